package frame

import (
	"fmt"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// Decode decodes a frame body (the bytes after the data offset): the performative and,
// for a transfer, the message bytes after it (aliasing body). typ is the frame type and
// selects the SASL or the AMQP performatives. An empty body returns (nil, nil, nil): a
// keep-alive frame (§2.4.5).
func Decode(typ byte, body []byte) (Body, []byte, error) {
	if len(body) == 0 {
		return nil, nil, nil
	}
	r := codec.NewReader(body)
	code, err := r.Descriptor("performative")
	if err != nil {
		return nil, nil, err
	}
	var b Body
	var f *codec.Fields
	if typ == TypeSASL {
		switch code {
		case CodeSASLInit:
			f = r.Composite("sasl-init")
			b = decodeSASLInit(f)
		case CodeSASLResponse:
			f = r.Composite("sasl-response")
			s := &SASLResponse{}
			s.Response, _ = f.Binary("response")
			b = s
		case CodeSASLMechanisms, CodeSASLChallenge, CodeSASLOutcome:
			return nil, nil, &codec.Error{Field: fmt.Sprintf("0x%02x", code), Msg: "SASL frame a server never receives"}
		default:
			return nil, nil, &codec.Error{Field: fmt.Sprintf("0x%02x", code), Msg: "unknown SASL frame descriptor"}
		}
	} else {
		switch code {
		case CodeOpen:
			f = r.Composite("open")
			b = decodeOpen(f)
		case CodeBegin:
			f = r.Composite("begin")
			b = decodeBegin(f)
		case CodeAttach:
			f = r.Composite("attach")
			b = decodeAttach(f)
		case CodeFlow:
			f = r.Composite("flow")
			b = decodeFlow(f)
		case CodeTransfer:
			f = r.Composite("transfer")
			b = decodeTransfer(f)
		case CodeDisposition:
			f = r.Composite("disposition")
			b = decodeDisposition(f)
		case CodeDetach:
			f = r.Composite("detach")
			b = decodeDetach(f)
		case CodeEnd:
			f = r.Composite("end")
			b = &End{Error: decodeErrorField(f)}
		case CodeClose:
			f = r.Composite("close")
			b = &Close{Error: decodeErrorField(f)}
		default:
			return nil, nil, &codec.Error{Field: fmt.Sprintf("0x%02x", code), Msg: "unknown performative descriptor"}
		}
	}
	if err := f.Done(); err != nil {
		return nil, nil, err
	}
	rest := r.Rest()
	if len(rest) > 0 && code != CodeTransfer {
		return nil, nil, &codec.Error{Offset: r.Offset(), Field: fmt.Sprintf("0x%02x", code), Msg: "unexpected bytes after the performative"}
	}
	return b, rest, nil
}

// Append appends a complete frame carrying body (and payload, for a transfer) on channel.
func Append(dst []byte, typ byte, channel uint16, body Body, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	var w codec.Writer
	w.SetBytes(dst)
	body.Encode(&w)
	dst = append(w.Bytes(), payload...)
	size := uint32(len(dst) - start)
	dst[start], dst[start+1], dst[start+2], dst[start+3] = byte(size>>24), byte(size>>16), byte(size>>8), byte(size)
	return dst
}
