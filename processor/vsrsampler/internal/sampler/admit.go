package sampler

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TakeNew moves out of td, into the returned Traces, the spans of traces the core neither
// holds nor remembers a decision for. Under block_on_overflow those are what must wait for
// room: the rest continues traces held, whose completion frees the room, or follows a
// decision and is not held at all.
func (s *Sampler) TakeNew(td ptrace.Traces) ptrace.Traces {
	known := map[pcommon.TraceID]bool{}
	isNew := func(span ptrace.Span) bool {
		id := span.TraceID()
		k, seen := known[id]
		if !seen {
			k = s.knows(id)
			known[id] = k
		}
		return !k
	}
	fresh := ptrace.NewTraces()
	for _, rs := range td.ResourceSpans().All() {
		var frs ptrace.ResourceSpans
		for _, ss := range rs.ScopeSpans().All() {
			var fss ptrace.ScopeSpans
			ss.Spans().RemoveIf(func(span ptrace.Span) bool {
				if !isNew(span) {
					return false
				}
				if fss == (ptrace.ScopeSpans{}) {
					if frs == (ptrace.ResourceSpans{}) {
						frs = fresh.ResourceSpans().AppendEmpty()
						rs.Resource().CopyTo(frs.Resource())
						frs.SetSchemaUrl(rs.SchemaUrl())
					}
					fss = frs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(fss.Scope())
					fss.SetSchemaUrl(ss.SchemaUrl())
				}
				span.MoveTo(fss.Spans().AppendEmpty())
				return true
			})
		}
	}
	removeEmpty(td)
	return fresh
}

// knows reports whether the core holds the trace or remembers its decision.
func (s *Sampler) knows(id pcommon.TraceID) bool {
	fp := fingerprint(id)
	sh := s.shards[shardOf(fp, len(s.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.index.find(hashID(id), id, sh.slots) >= 0 {
		return true
	}
	if _, ok := sh.keep.get(fp); ok {
		return true
	}
	_, ok := sh.drop.get(fp)
	return ok
}
