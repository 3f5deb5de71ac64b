package message

import (
	"fmt"

	"github.com/shadowgw/shadowgw/edge/codec"
)

// IncrementDeliveryCount returns p with its header's delivery-count one higher, adding
// a header when p has none: what a sender does before it sends a message again after a
// modified outcome with delivery-failed (§3.4.5). The other sections are kept as they
// are.
func IncrementDeliveryCount(p []byte) ([]byte, error) {
	r := codec.NewReader(p)
	fields := codec.List{nil, nil, nil, nil, uint32(0)}
	rest := p
	if r.Len() > 0 {
		code, err := r.Descriptor("section")
		if err != nil {
			return nil, err
		}
		if code == SecHeader {
			v, err := r.Value()
			if err != nil {
				return nil, err
			}
			l, ok := v.(codec.List)
			if !ok {
				return nil, fmt.Errorf("header section is not a list")
			}
			fields = append(l[:0:0], l...)
			for len(fields) < 5 {
				fields = append(fields, nil)
			}
			rest = r.Rest()
		}
	}
	var n uint32
	switch v := fields[4].(type) {
	case uint32:
		n = v
	case nil:
	default:
		return nil, fmt.Errorf("header delivery-count of type %T", v)
	}
	fields[4] = n + 1
	var w codec.Writer
	w.SetBytes(make([]byte, 0, len(p)+16))
	w.Descriptor(SecHeader)
	if err := w.Value(fields); err != nil {
		return nil, err
	}
	w.Raw(rest)
	return w.Bytes(), nil
}
