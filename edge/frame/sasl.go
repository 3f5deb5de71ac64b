package frame

import "github.com/shadowgw/shadowgw/edge/codec"

// SASL outcome codes (§5.3.3.6).
const (
	SASLOK      uint8 = 0
	SASLAuth    uint8 = 1
	SASLSys     uint8 = 2
	SASLSysPerm uint8 = 3
	SASLSysTemp uint8 = 4
)

// SASLMechanisms advertises the server's mechanisms (§5.3.3.1, descriptor 0x40).
type SASLMechanisms struct{ Mechanisms []codec.Symbol }

func (*SASLMechanisms) Code() uint64 { return CodeSASLMechanisms }

func (s *SASLMechanisms) Encode(w *codec.Writer) {
	w.Descriptor(CodeSASLMechanisms)
	m := w.BeginList()
	w.SymbolArray(s.Mechanisms)
	w.EndList(m, 1)
}

// SASLInit is the client's chosen mechanism and initial response (§5.3.3.2, 0x41).
type SASLInit struct {
	Mechanism       codec.Symbol
	InitialResponse []byte // aliases the frame
	Hostname        string
}

func (*SASLInit) Code() uint64 { return CodeSASLInit }

func (s *SASLInit) Encode(w *codec.Writer) {
	w.Descriptor(CodeSASLInit)
	m := w.BeginList()
	w.Symbol(s.Mechanism)
	w.Binary(s.InitialResponse)
	w.EndList(m, 2)
}

func decodeSASLInit(f *codec.Fields) *SASLInit {
	s := &SASLInit{}
	var ok bool
	if s.Mechanism, ok = f.Symbol("mechanism"); !ok {
		f.Fail("mechanism", "mandatory field missing")
	}
	s.InitialResponse, _ = f.Binary("initial-response")
	s.Hostname, _ = f.String("hostname")
	return s
}

// SASLResponse is a client's response to a challenge (§5.3.3.4, 0x43).
type SASLResponse struct{ Response []byte }

func (*SASLResponse) Code() uint64 { return CodeSASLResponse }

func (s *SASLResponse) Encode(w *codec.Writer) {
	w.Descriptor(CodeSASLResponse)
	m := w.BeginList()
	w.Binary(s.Response)
	w.EndList(m, 1)
}

// SASLOutcome ends the SASL exchange (§5.3.3.6, 0x44).
type SASLOutcome struct{ Outcome uint8 }

func (*SASLOutcome) Code() uint64 { return CodeSASLOutcome }

func (s *SASLOutcome) Encode(w *codec.Writer) {
	w.Descriptor(CodeSASLOutcome)
	m := w.BeginList()
	w.Ubyte(s.Outcome)
	w.EndList(m, 1)
}
