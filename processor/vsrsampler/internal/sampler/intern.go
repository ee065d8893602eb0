package sampler

import (
	"strings"
	"unsafe"
)

// handle is an interned string; 0 is the empty string.
type handle uint16

// interner holds the distinct strings of a shard's traces in flight (models, categories,
// decisions, error classes, dynamic keys) once each, so a trace refers to them in two bytes.
// Strings are counted by reference and forgotten with their last trace. When all handles
// are in use a new string is not kept (the trace's summary lacks it) and counted.
type interner struct {
	ids     map[string]handle
	entries []internEntry
	free    []handle
	// bytes is what the table holds besides its slices: strings and map entries.
	bytes    int64
	overflow int64
}

type internEntry struct {
	s    string
	refs uint32
}

// internEntryCost approximates a map entry of the table: key header, value, overhead.
const internEntryCost = 48

func newInterner() *interner {
	return &interner{ids: map[string]handle{}, entries: make([]internEntry, 1)}
}

func (in *interner) memory() int64 {
	return in.bytes + int64(cap(in.entries))*int64(unsafe.Sizeof(internEntry{})) + int64(cap(in.free))*2
}

// intern returns a handle holding one reference to s.
func (in *interner) intern(s string) handle {
	if s == "" {
		return 0
	}
	if h, ok := in.ids[s]; ok {
		in.entries[h].refs++
		return h
	}
	var h handle
	switch {
	case len(in.free) > 0:
		h, in.free = in.free[len(in.free)-1], in.free[:len(in.free)-1]
	case len(in.entries) <= int(^handle(0)):
		h = handle(len(in.entries))
		in.entries = append(in.entries, internEntry{})
	default:
		in.overflow++
		return 0
	}
	// A copy: the string may point into a batch the collector reuses.
	s = strings.Clone(s)
	in.entries[h] = internEntry{s: s, refs: 1}
	in.ids[s] = h
	in.bytes += int64(len(s)) + internEntryCost
	return h
}

// ref adds a reference to h.
func (in *interner) ref(h handle) handle {
	if h != 0 {
		in.entries[h].refs++
	}
	return h
}

func (in *interner) release(h handle) {
	if h == 0 {
		return
	}
	e := &in.entries[h]
	if e.refs--; e.refs > 0 {
		return
	}
	delete(in.ids, e.s)
	in.bytes -= int64(len(e.s)) + internEntryCost
	*e = internEntry{}
	in.free = append(in.free, h)
}

func (in *interner) str(h handle) string { return in.entries[h].s }
