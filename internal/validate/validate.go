// Package validate checks, before anything is sent, that a value can be
// stored by PostgreSQL, so that a keel write refuses bad input with a typed
// error while the caller's transaction stays usable.
//
// Postgres refuses, and aborts the transaction for:
//   - text with a NUL byte (22021) or with bytes that are not UTF-8 (22021);
//   - jsonb holding the escape \u0000 (22P05), a number outside numeric's
//     range (22003), or nesting deeper than the server's stack (54001);
//   - a btree entry larger than about a third of a page (54000).
//
// Every check here is one of those, with the limits keel chose to stay clear
// of them. The limits on indexed text are also CHECK constraints in the
// schema (migration 00010), as a second line of defence; TestLimitsMatchSchema
// keeps the two in step.
//
// The feature packages wrap an *Error in their own sentinel (jobs'
// ErrInvalidOptions, outbox's ErrInvalidMessage …), so callers test with
// errors.Is against the package they use and read the field and the limit in
// the message.
package validate

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits, in bytes, of the text keel stores. Each keeps the largest index
// entry that holds the field well under Postgres's btree limit of 2,704
// bytes.
const (
	// MaxName bounds names: job kinds, topics, event and message types,
	// workflow, signal, consumer and subscription names.
	MaxName = 255
	// MaxQueue bounds job and saga queue names.
	MaxQueue = 128
	// MaxKey bounds keys and ids a caller chooses: outbox keys, inbox
	// message ids, unique job keys, stream ids, signal idempotency keys,
	// causation and correlation ids.
	MaxKey = 1024
	// MaxRunID bounds saga run ids.
	MaxRunID = 255
)

// MaxErrorText bounds the text of an error keel stores (a failed attempt's
// error, a run's or a subscription's last error): the row keeps it in every
// later version.
const MaxErrorText = 16 << 10

// Limits of JSON values (job args, payload headers, saga input and output,
// event data and metadata, snapshot state).
const (
	// MaxJSONDepth bounds nesting of arrays and objects. Postgres parses jsonb
	// recursively and stops at max_stack_depth; 1,000 levels stay far inside
	// its smallest setting.
	MaxJSONDepth = 1000
	// MaxJSONBytes bounds one encoded JSON value. A jsonb value may not exceed
	// 255 MiB in its binary form, which can be four times the text.
	MaxJSONBytes = 32 << 20
	// maxIntDigits and maxScale are numeric's limits: 131,072 digits before
	// the decimal point and 16,383 after.
	maxIntDigits = 131072
	maxScale     = 16383
	// maxExponent bounds the exponent of a JSON number, zero's included
	// (Postgres refuses 0e1073741823).
	maxExponent = 1_000_000
)

// Error is a value that cannot be stored, and why.
type Error struct {
	// Field names what was wrong: "topic", "headers[\"x\"]", "args" …
	Field string
	// Reason says what is wrong with it, and the limit it broke.
	Reason string
	// Err is the encoder's error when the value did not encode at all.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Field, e.Reason, e.Err)
	}
	return e.Field + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

func fail(field, format string, a ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Text checks that s can be stored in a text column: no NUL byte, valid
// UTF-8, at most max bytes (max 0: no limit). Empty is allowed.
func Text(field, s string, max int) error {
	if max > 0 && len(s) > max {
		return fail(field, "is %d bytes long; at most %d", len(s), max)
	}
	return storable(field, s)
}

// Name is Text that must not be empty.
func Name(field, s string, max int) error {
	if s == "" {
		return fail(field, "is empty")
	}
	return Text(field, s, max)
}

// Texts checks every element of ss with Text.
func Texts(field string, ss []string, max int) error {
	for i, s := range ss {
		if err := Text(fmt.Sprintf("%s[%d]", field, i), s, max); err != nil {
			return err
		}
	}
	return nil
}

func storable(field, s string) error {
	if i := indexNUL(s); i >= 0 {
		return fail(field, "has a NUL byte at offset %d; Postgres text cannot hold it", i)
	}
	if !utf8.ValidString(s) {
		return fail(field, "is not valid UTF-8")
	}
	return nil
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// JSON checks that raw is one JSON value that jsonb stores as it is: valid
// JSON and UTF-8, no \u0000 escape, numbers within numeric's range, at most
// MaxJSONDepth levels and MaxJSONBytes bytes.
func JSON(field string, raw []byte) error {
	if len(raw) > MaxJSONBytes {
		return fail(field, "is %d bytes of JSON; at most %d", len(raw), MaxJSONBytes)
	}
	if !utf8.Valid(raw) {
		return fail(field, "is not valid UTF-8")
	}
	if !json.Valid(raw) {
		return fail(field, "is not valid JSON")
	}
	return scan(field, raw)
}

// scan walks valid JSON for what jsonb refuses.
func scan(field string, raw []byte) error {
	depth := 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '[' || c == '{':
			if depth++; depth > MaxJSONDepth {
				return fail(field, "nests deeper than %d levels", MaxJSONDepth)
			}
		case c == ']' || c == '}':
			depth--
		case c == '"':
			end, err := scanString(field, raw, i)
			if err != nil {
				return err
			}
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			end := i
			for end < len(raw) && bytes.IndexByte([]byte("+-.eE0123456789"), raw[end]) >= 0 {
				end++
			}
			if err := number(field, raw[i:end]); err != nil {
				return err
			}
			i = end - 1
		}
	}
	return nil
}

// scanString returns the index of the quote that closes the string opened at
// raw[start], refusing the escapes jsonb refuses: \u0000 and a UTF-16
// surrogate that is not one half of a pair.
func scanString(field string, raw []byte, start int) (int, error) {
	for i := start + 1; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			return i, nil
		case '\\':
			if raw[i+1] != 'u' {
				i++
				continue
			}
			switch r := hex4(raw[i+2 : i+6]); {
			case r == 0:
				return 0, fail(field, `holds the escape \u0000; jsonb cannot store it`)
			case r >= 0xd800 && r < 0xdc00:
				if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' || !isLowSurrogate(hex4(raw[i+8:i+12])) {
					return 0, fail(field, `holds the escape \u%04x without its low surrogate; jsonb cannot store it`, r)
				}
				i += 11
			case isLowSurrogate(r):
				return 0, fail(field, `holds the escape \u%04x without its high surrogate; jsonb cannot store it`, r)
			default:
				i += 5
			}
		}
	}
	return len(raw), nil
}

func isLowSurrogate(r rune) bool { return r >= 0xdc00 && r < 0xe000 }

// hex4 decodes the four hex digits of a \u escape that json.Valid accepted.
func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// number checks a JSON number against numeric's limits.
func number(field string, lit []byte) error {
	mant, exp := lit, int64(0)
	if i := bytes.IndexAny(lit, "eE"); i >= 0 {
		mant = lit[:i]
		e, err := strconv.ParseInt(string(lit[i+1:]), 10, 64)
		if err != nil || e > maxExponent || e < -maxExponent {
			return fail(field, "has the number %.40s, whose exponent is beyond ±%d", lit, maxExponent)
		}
		exp = e
	}
	mant = bytes.TrimPrefix(mant, []byte("-"))
	intPart, frac, _ := bytes.Cut(mant, []byte("."))
	digits := append(append([]byte{}, intPart...), frac...)
	point := int64(len(intPart)) + exp // where the point falls in digits
	lead := int64(len(digits) - len(bytes.TrimLeft(digits, "0")))
	if n := point - lead; lead < int64(len(digits)) && n > maxIntDigits {
		return fail(field, "has the number %.40s with %d digits before the point; Postgres numeric holds %d", lit, n, maxIntDigits)
	}
	if scale := int64(len(digits)) - point; scale > maxScale {
		return fail(field, "has the number %.40s with %d digits after the point; Postgres numeric holds %d", lit, scale, maxScale)
	}
	return nil
}

// Marshal encodes v as JSON for a jsonb column and checks the result with
// JSON. encoding/json would silently replace invalid UTF-8 in a Go string
// with U+FFFD; Marshal refuses it instead, and refuses a NUL in any string
// (jsonb cannot store its escape).
func Marshal(field string, v any) (json.RawMessage, error) {
	if err := checkStrings(field, reflect.ValueOf(v), 0); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Field: field, Reason: "does not encode as JSON", Err: err}
	}
	if err := JSON(field, raw); err != nil {
		return nil, err
	}
	return raw, nil
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// checkStrings checks every string json.Marshal would write from v. A value with
// its own MarshalJSON is left to JSON's check of the output, which sees its
// bytes as they are.
func checkStrings(field string, v reflect.Value, depth int) error {
	if !v.IsValid() {
		return nil
	}
	if depth > MaxJSONDepth {
		return fail(field, "nests deeper than %d levels", MaxJSONDepth)
	}
	t := v.Type()
	if t.Implements(jsonMarshaler) || (v.CanAddr() && reflect.PointerTo(t).Implements(jsonMarshaler)) {
		return nil
	}
	if t.Implements(textMarshaler) && v.CanInterface() && (t.Kind() != reflect.Pointer || !v.IsNil()) {
		return marshalText(field, v)
	}
	switch v.Kind() {
	case reflect.String:
		return storable(field, v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkStrings(field, v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && v.Kind() == reflect.Slice {
			return nil // base64
		}
		for i := range v.Len() {
			if err := checkStrings(fmt.Sprintf("%s[%d]", field, i), v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			name := fmt.Sprint(k)
			switch {
			case k.Type().Implements(textMarshaler) && k.CanInterface():
				if err := marshalText(field+" key", k); err != nil {
					return err
				}
			case k.Kind() == reflect.String:
				if err := storable(field+" key", k.String()); err != nil {
					return err
				}
			}
			if err := checkStrings(fmt.Sprintf("%s[%q]", field, name), iter.Value(), depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (!f.IsExported() && !f.Anonymous) || f.Tag.Get("json") == "-" {
				continue
			}
			if err := checkStrings(field+"."+f.Name, v.Field(i), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// marshalText checks the text a TextMarshaler gives json.Marshal.
func marshalText(field string, v reflect.Value) error {
	text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
	if err != nil {
		return nil // json.Marshal reports it
	}
	return storable(field, string(text))
}

// ErrorText is an error message as keel stores it. An error is the one text
// keel rewrites instead of refusing: it says why something failed, may quote
// what failed (NUL bytes, bytes that are not UTF-8, a huge value), and
// refusing it would lose the failure. Each NUL byte and each invalid byte
// becomes U+FFFD, and text past MaxErrorText is cut at a rune boundary with a
// note of how much was cut.
func ErrorText(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= MaxErrorText {
		return s
	}
	end := MaxErrorText - 32 // room for the note
	for !utf8.RuneStart(s[end]) {
		end--
	}
	return fmt.Sprintf("%s … (%d bytes cut)", s[:end], len(s)-end)
}
