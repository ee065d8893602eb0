package sampler

import "go.opentelemetry.io/collector/pdata/pcommon"

// smallSetLimit is where a span ID set switches from a slice to a map: router traces have
// about ten spans, where a linear scan beats hashing.
const smallSetLimit = 32

// spanIDSet is a set of span IDs that stays cheap for small traces.
type spanIDSet struct {
	small []pcommon.SpanID
	big   map[pcommon.SpanID]struct{}
}

func (s *spanIDSet) has(id pcommon.SpanID) bool {
	if s.big != nil {
		_, ok := s.big[id]
		return ok
	}
	for _, x := range s.small {
		if x == id {
			return true
		}
	}
	return false
}

// add inserts id and reports whether it was new.
func (s *spanIDSet) add(id pcommon.SpanID) bool {
	if s.has(id) {
		return false
	}
	if s.big == nil && len(s.small) < smallSetLimit {
		s.small = append(s.small, id)
		return true
	}
	if s.big == nil {
		s.big = make(map[pcommon.SpanID]struct{}, 2*smallSetLimit)
		for _, x := range s.small {
			s.big[x] = struct{}{}
		}
		s.small = s.small[:0]
	}
	s.big[id] = struct{}{}
	return true
}

// remove deletes id and reports whether it was there.
func (s *spanIDSet) remove(id pcommon.SpanID) bool {
	if s.big != nil {
		_, ok := s.big[id]
		delete(s.big, id)
		return ok
	}
	for i, x := range s.small {
		if x == id {
			s.small[i] = s.small[len(s.small)-1]
			s.small = s.small[:len(s.small)-1]
			return true
		}
	}
	return false
}

func (s *spanIDSet) len() int {
	if s.big != nil {
		return len(s.big)
	}
	return len(s.small)
}

// reset empties the set, keeping the small slice's storage for the next trace.
func (s *spanIDSet) reset() {
	s.small = s.small[:0]
	s.big = nil
}
