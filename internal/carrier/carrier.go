// Package carrier stores the trace context a keeltype.Hook puts in an
// Operation's Carrier with the rows a write makes, and reads it back from a
// stored row. What it cannot store it drops: a carrier never fails a write
// (see keeltype's package doc for the rules and their limits).
package carrier

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// Entries are the storable entries of one Operation's Carrier, encoded
// once for every row of the write.
type Entries struct {
	m       map[string]string
	encoded []byte // m as a JSON object
}

// Clean keeps the entries of c keel can store: at most
// keeltype.MaxCarrierEntries, in name order, each a name of 1 to
// keeltype.MaxCarrierName bytes and a value of at most
// keeltype.MaxCarrierValue bytes, both storable text. It returns nil when
// none is left.
func Clean(c map[string]string) *Entries {
	if len(c) == 0 {
		return nil
	}
	kept := make(map[string]string, min(len(c), keeltype.MaxCarrierEntries))
	for _, name := range slices.Sorted(maps.Keys(c)) {
		if len(kept) == keeltype.MaxCarrierEntries {
			break
		}
		value := c[name]
		if validate.Name("carrier name", name, keeltype.MaxCarrierName) != nil ||
			validate.Text("carrier value", value, keeltype.MaxCarrierValue) != nil {
			continue
		}
		kept[name] = value
	}
	if len(kept) == 0 {
		return nil
	}
	encoded, err := json.Marshal(kept)
	if err != nil {
		return nil // storable strings always encode
	}
	return &Entries{m: kept, encoded: encoded}
}

// Map returns the entries; nil when e is nil.
func (e *Entries) Map() map[string]string {
	if e == nil {
		return nil
	}
	return maps.Clone(e.m)
}

// Metadata returns meta, a JSON object, with the entries under
// keeltype.CarrierKey. meta comes back as it is when e is nil, when meta is
// not a JSON object, when it holds the key already (the caller's value is
// kept) or when the result would be larger than validate.MaxJSONBytes.
func (e *Entries) Metadata(meta json.RawMessage) json.RawMessage {
	if e == nil {
		return meta
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(meta, &fields) != nil || fields == nil {
		return meta
	}
	if _, taken := fields[keeltype.CarrierKey]; taken {
		return meta
	}
	body := bytes.TrimSpace(meta)[1:] // after the opening brace
	out := make([]byte, 0, len(meta)+len(keeltype.CarrierKey)+len(e.encoded)+5)
	out = append(out, `{"`+keeltype.CarrierKey+`":`...)
	out = append(out, e.encoded...)
	if len(fields) > 0 {
		out = append(out, ',')
	}
	out = append(out, body...)
	if len(out) > validate.MaxJSONBytes {
		return meta
	}
	return out
}

// Headers returns h with the entries it lacks added, as a new map, and
// whether it added any. A header h has already is kept.
func (e *Entries) Headers(h map[string]string) (map[string]string, bool) {
	if e == nil {
		return h, false
	}
	var out map[string]string
	for name, value := range e.m {
		if _, taken := h[name]; taken {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(h)+len(e.m))
			maps.Copy(out, h)
		}
		out[name] = value
	}
	if out == nil {
		return h, false
	}
	return out, true
}

// marker is how a stored carrier begins; metadata without it holds none,
// and is not decoded.
const marker = `"` + keeltype.CarrierKey + `"`

// FromMetadata returns the carrier stored in meta under
// keeltype.CarrierKey, or nil when there is none or it is not an object of
// strings.
func FromMetadata(meta json.RawMessage) map[string]string {
	if !bytes.Contains(meta, []byte(marker)) {
		return nil
	}
	var stored struct {
		Carrier map[string]string `json:"keel_trace"`
	}
	if json.Unmarshal(meta, &stored) != nil || len(stored.Carrier) == 0 {
		return nil
	}
	return stored.Carrier
}
