package sampler

import (
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// lineage collects a trace's span IDs and the parents its spans name, to tell whether every
// parent has arrived. A root and its model call can arrive before the spans between them when
// exports are retried or reordered; a trace taken as complete then would be decided without
// them, and an error among them would come after the rescue window.
type lineage struct {
	ids, parents       [maxLineage]pcommon.SpanID
	nIDs, nParents     int
	overflow, unusable bool
}

// maxLineage bounds the spans looked at: larger traces are not router requests, and are taken
// as whole when they look complete.
const maxLineage = 64

func (l *lineage) add(id, parent pcommon.SpanID, root bool) {
	if l.nIDs == maxLineage {
		l.overflow = true
		return
	}
	l.ids[l.nIDs] = id
	l.nIDs++
	if !root {
		l.parents[l.nParents] = parent
		l.nParents++
	}
}

// whole reports whether every span but the local roots names a parent that has arrived; a
// lineage it could not read is taken as whole.
func (l *lineage) whole() bool {
	if l.overflow || l.unusable {
		return true
	}
	for _, p := range l.parents[:l.nParents] {
		if !slices.Contains(l.ids[:l.nIDs], p) {
			return false
		}
	}
	return true
}

// addEncoded adds the spans of parked OTLP TracesData, reading only their IDs, flags and names.
func (l *lineage) addEncoded(data []byte) {
	const resourceSpans, scopeSpans, spans = 1, 2, 2
	ok := eachField(data, resourceSpans, func(rs []byte) bool {
		return eachField(rs, scopeSpans, func(ss []byte) bool {
			return eachField(ss, spans, l.addEncodedSpan)
		})
	})
	l.unusable = l.unusable || !ok
}

// Span fields read from the encoding.
const (
	spanID       protowire.Number = 2
	parentSpanID protowire.Number = 4
	spanName     protowire.Number = 5
	spanFlags    protowire.Number = 16
)

func (l *lineage) addEncodedSpan(span []byte) bool {
	var id, parent pcommon.SpanID
	var name []byte
	var flags uint32
	for len(span) > 0 {
		num, typ, n := protowire.ConsumeTag(span)
		if n < 0 {
			return false
		}
		span = span[n:]
		switch {
		case typ == protowire.BytesType && (num == spanID || num == parentSpanID || num == spanName):
			v, m := protowire.ConsumeBytes(span)
			if m < 0 {
				return false
			}
			switch num {
			case spanID:
				copy(id[:], v)
			case parentSpanID:
				copy(parent[:], v)
			default:
				name = v
			}
			n = m
		case typ == protowire.Fixed32Type && num == spanFlags:
			flags, n = protowire.ConsumeFixed32(span)
		default:
			n = protowire.ConsumeFieldValue(num, typ, span)
		}
		if n < 0 {
			return false
		}
		span = span[n:]
	}
	l.add(id, parent, routerconv.IsEncodedLocalRoot(parent, flags, name))
	return true
}

// eachField calls f with the value of each length-delimited field num of msg, and reports
// whether msg was well formed and f returned true throughout.
func eachField(msg []byte, num protowire.Number, f func([]byte) bool) bool {
	for len(msg) > 0 {
		n, typ, k := protowire.ConsumeTag(msg)
		if k < 0 {
			return false
		}
		msg = msg[k:]
		if n == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(msg)
			if m < 0 || !f(v) {
				return false
			}
			msg = msg[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(n, typ, msg)
		if m < 0 {
			return false
		}
		msg = msg[m:]
	}
	return true
}

// parentsArrived reports whether every span of an open trace, parked or in this batch, names a
// parent that has arrived, but its local roots. Spilled spans are not read back for it: a trace
// under pressure is taken as whole when it looks complete.
func (s *Sampler) parentsArrived(sh *shard, si int32, in *here) bool {
	t := &sh.slots[si]
	if sh.store.OnDisk(&t.parked) {
		return true
	}
	var l lineage
	for part := range sh.store.InMemory(si, &t.parked) {
		l.addEncoded(part)
	}
	for _, r := range in.bt.spans {
		span := in.b.span(r)
		l.add(span.SpanID(), span.ParentSpanID(), routerconv.IsLocalRoot(span))
	}
	return l.whole()
}
