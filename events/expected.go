package events

import "strconv"

// ExpectedVersion is what an append expects of its stream. Use Any,
// NoStream, StreamExists or Exactly(n). Versions count events from 1, so
// Exactly(0) is a stream with no events, the same as NoStream.
type ExpectedVersion struct {
	kind    string
	version int64
}

// Expectations an append can state.
var (
	// Any appends whatever the stream's version, creating it if needed.
	Any = ExpectedVersion{kind: kindAny}
	// NoStream appends only to a stream that has no events yet.
	NoStream = ExpectedVersion{kind: kindNoStream}
	// StreamExists appends only to a stream that already has events.
	StreamExists = ExpectedVersion{kind: kindExists}
)

// The kinds, as the append query names them.
const (
	kindAny      = "any"
	kindNoStream = "no_stream"
	kindExists   = "exists"
	kindExact    = "exact"
)

// Exactly appends only when the stream's current version is n (the version of
// its newest event; 0 for a stream with none). A negative n is invalid.
func Exactly(n int64) ExpectedVersion { return ExpectedVersion{kind: kindExact, version: n} }

func (e ExpectedVersion) String() string {
	switch e.kind {
	case kindExact:
		return "version " + strconv.FormatInt(e.version, 10)
	case kindNoStream:
		return "no stream"
	case kindExists:
		return "stream exists"
	case kindAny:
		return "any version"
	}
	return "invalid expected version"
}

func (e ExpectedVersion) validate() error {
	switch e.kind {
	case kindAny, kindNoStream, kindExists:
		return nil
	case kindExact:
		if e.version < 0 {
			return invalid("expected version %d is negative", e.version)
		}
		return nil
	}
	return invalid("expected version is not set: use Any, NoStream, StreamExists or Exactly(n)")
}
