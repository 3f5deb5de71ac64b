package codec

import "unicode/utf8"

// Check passes over one value of any type as [Reader.Value] would decode it, accepting
// and refusing exactly what Value accepts and refuses, without building the value: it
// allocates nothing. It returns the value's format code (for a described value,
// TypeDescribed). The gateway checks the sections of every message it stores with it:
// Value's maps, lists and boxed primitives cost several allocations per message.
func (r *Reader) Check() (byte, error) {
	start := r.off
	c, err := r.code("")
	if err != nil {
		return 0, err
	}
	switch c {
	case TypeNull:
		return c, nil
	case TypeDescribed:
		return c, r.checkDescribed(start)
	case TypeList0, TypeList8, TypeList32:
		return c, r.checkList(start, c)
	case TypeMap8, TypeMap32:
		return c, r.checkMap(start, c)
	case TypeArray8, TypeArray32:
		return c, r.checkArray(start, c)
	}
	return c, r.checkPrimitive(start, c)
}

// checkDescribed is described without the value.
func (r *Reader) checkDescribed(start int) error {
	if err := r.enter(start, TypeDescribed); err != nil {
		return err
	}
	defer func() { r.depth-- }()
	dc, err := r.Check()
	if err != nil {
		return err
	}
	if !descriptorCode(dc) {
		return r.fail(start+1, 0, "", "descriptor must be a ulong or a symbol")
	}
	_, err = r.Check()
	return err
}

// descriptorCode reports whether a value of code c decodes to a ulong or a symbol,
// the two types a descriptor may have.
func descriptorCode(c byte) bool {
	switch c {
	case TypeUlong, TypeSmallUlong, TypeUlong0, TypeSym8, TypeSym32:
		return true
	}
	return false
}

// checkList is list without the value.
func (r *Reader) checkList(start int, c byte) error {
	if err := r.enter(start, c); err != nil {
		return err
	}
	defer func() { r.depth-- }()
	n, end, err := r.compound(c, "")
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if _, err := r.Check(); err != nil {
			return err
		}
	}
	if r.off != end {
		return r.fail(start, c, "", "list size does not match its elements")
	}
	return nil
}

// checkMap is mapValue without the value.
func (r *Reader) checkMap(start int, c byte) error {
	if err := r.enter(start, c); err != nil {
		return err
	}
	defer func() { r.depth-- }()
	n, end, err := r.compound(c, "")
	if err != nil {
		return err
	}
	if n%2 != 0 {
		return r.fail(start, c, "", "map has an odd number of elements")
	}
	for i := 0; i < n; i++ {
		if _, err := r.Check(); err != nil {
			return err
		}
	}
	if r.off != end {
		return r.fail(start, c, "", "map size does not match its elements")
	}
	return nil
}

// checkArray is array without the value.
func (r *Reader) checkArray(start int, c byte) error {
	if err := r.enter(start, c); err != nil {
		return err
	}
	defer func() { r.depth-- }()
	wide := c == TypeArray32
	size, err := r.size(wide, c, "")
	if err != nil {
		return err
	}
	end := r.off + size
	n, err := r.size(wide, c, "")
	if err != nil {
		return err
	}
	if n > end-r.off {
		return r.fail(start, c, "", "element count exceeds size")
	}
	ec, err := r.code("")
	if err != nil {
		return err
	}
	if ec == TypeDescribed {
		dstart := r.off
		dc, err := r.Check()
		if err != nil {
			return err
		}
		if !descriptorCode(dc) {
			return r.fail(dstart, 0, "", "array element descriptor must be a ulong or a symbol")
		}
		if ec, err = r.code(""); err != nil {
			return err
		}
		if ec == TypeDescribed {
			return r.fail(r.off-1, ec, "", "invalid array element constructor")
		}
	}
	if ec == TypeNull || !knownCode(ec) {
		return r.fail(r.off-1, ec, "", "invalid array element constructor")
	}
	for i := 0; i < n; i++ {
		switch ec {
		case TypeList0, TypeList8, TypeList32:
			err = r.checkList(r.off, ec)
		case TypeMap8, TypeMap32:
			err = r.checkMap(r.off, ec)
		case TypeArray8, TypeArray32:
			err = r.checkArray(r.off, ec)
		default:
			err = r.checkPrimitive(r.off, ec)
		}
		if err != nil {
			return err
		}
	}
	if r.off != end {
		return r.fail(start, c, "", "array size does not match its elements")
	}
	return nil
}

// checkPrimitive is primitive without the value.
func (r *Reader) checkPrimitive(start int, c byte) error {
	if w := fixedWidth(c); w >= 0 {
		p, err := r.take(w, c, "")
		if err != nil {
			return err
		}
		if c == TypeBool && p[0] > 1 {
			return r.fail(start, c, "", "boolean byte must be 0 or 1")
		}
		return nil
	}
	switch c {
	case TypeVbin8, TypeVbin32, TypeStr8, TypeStr32, TypeSym8, TypeSym32:
		n, err := r.size(c&0xf0 == 0xb0, c, "")
		if err != nil {
			return err
		}
		p, err := r.take(n, c, "")
		if err != nil {
			return err
		}
		if (c == TypeStr8 || c == TypeStr32) && !utf8.Valid(p) {
			return r.fail(start, c, "", "string is not valid UTF-8")
		}
		return nil
	}
	return r.fail(start, c, "", "unknown format code")
}
