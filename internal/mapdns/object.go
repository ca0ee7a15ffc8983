package mapdns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// object is a JSON object as written: each member's text is kept exactly,
// so editing some members leaves the others byte for byte.
type object struct {
	members  []member
	trailing []byte // whitespace before the closing brace
	after    []byte // whitespace after it
}

type member struct {
	key  string
	lead []byte // what precedes the key: whitespace, and the comma if not first
	text []byte // `"key": value` exactly as written
}

// parseObject splits data (a JSON object, or nothing) into its members.
func parseObject(data []byte) (object, error) {
	var o object
	if len(bytes.TrimSpace(data)) == 0 {
		return o, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return o, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return o, errors.New("the top level is not an object")
	}
	// More and Token skip whitespace before reporting, so the offsets to
	// trust are those right after '{' and right after each value.
	pos := int(dec.InputOffset())
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return o, err
		}
		key, ok := tok.(string)
		if !ok {
			return o, fmt.Errorf("object key %v is not a string", tok)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return o, err
		}
		end := int(dec.InputOffset())
		span := data[pos:end]
		pos = end
		q := bytes.IndexByte(span, '"') // the key's opening quote
		if q < 0 {
			return o, fmt.Errorf("object key %q not found in the text", key)
		}
		o.members = append(o.members, member{key: key, lead: span[:q], text: span[q:]})
	}
	if _, err := dec.Token(); err != nil {
		return o, err
	}
	end := int(dec.InputOffset()) // just after '}'
	o.trailing = data[pos : end-1]
	o.after = data[end:]
	if dec.More() {
		return o, errors.New("text after the object")
	}
	if len(bytes.TrimSpace(o.trailing)) > 0 || len(bytes.TrimSpace(o.after)) > 0 {
		return o, errors.New("unexpected text around the object")
	}
	return o, nil
}

// drop removes every member whose key is in keys.
func (o *object) drop(keys map[string]bool) {
	kept := o.members[:0:0]
	for _, m := range o.members {
		if !keys[m.key] {
			kept = append(kept, m)
		}
	}
	o.members = kept
}

// add appends a member, indented like the first member (two spaces when
// the object has none).
func (o *object) add(key string, value any) error {
	k, err := json.Marshal(key)
	if err != nil {
		return err
	}
	v, err := json.Marshal(value)
	if err != nil {
		return err
	}
	lead := []byte("\n  ")
	if len(o.members) > 0 {
		lead = withoutComma(o.members[0].lead)
	} else if !bytes.Contains(o.trailing, []byte("\n")) {
		o.trailing = []byte("\n")
	}
	o.members = append(o.members, member{key: key, lead: lead, text: fmt.Appendf(nil, "%s: %s", k, v)})
	return nil
}

func (o object) render() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o.members {
		switch {
		case i == 0:
			b.Write(withoutComma(m.lead))
		case bytes.IndexByte(m.lead, ',') < 0:
			b.WriteByte(',')
			b.Write(m.lead)
		default:
			b.Write(m.lead)
		}
		b.Write(m.text)
	}
	b.Write(o.trailing)
	b.WriteByte('}')
	if o.after == nil {
		b.WriteByte('\n')
	} else {
		b.Write(o.after)
	}
	return b.Bytes()
}

// withoutComma is a member's lead as the first member's: from after its comma.
func withoutComma(lead []byte) []byte {
	if c := bytes.IndexByte(lead, ','); c >= 0 {
		return lead[c+1:]
	}
	return lead
}
