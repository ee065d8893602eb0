package admission

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// batch has one span per id, all of trace 1.
func batch(ids ...byte) ptrace.Traces {
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for _, id := range ids {
		span := spans.AppendEmpty()
		span.SetTraceID(pcommon.TraceID{1})
		span.SetSpanID(pcommon.SpanID{id})
	}
	return td
}

func ids(td ptrace.Traces) []byte {
	var out []byte
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				out = append(out, span.SpanID()[0])
			}
		}
	}
	return out
}

func TestRetryBringsInOnlyWhatWasNotTaken(t *testing.T) {
	l := New(time.Minute, 100)
	key := Key(batch(1, 2, 3, 4))
	assert.Equal(t, key, Key(batch(1, 2, 3, 4)), "a retry has the batch's key")
	assert.NotEqual(t, key, Key(batch(1, 2, 4, 3)))
	assert.False(t, l.Pending())

	l.Record(key, batch(1, 3), t0)
	assert.True(t, l.Pending())
	retry := batch(1, 2, 3, 4)
	assert.Equal(t, 2, l.Skip(key, retry, t0.Add(time.Second)))
	assert.Equal(t, []byte{2, 4}, ids(retry))

	// Refused again: what this try took adds to what the first took.
	l.Record(key, batch(2), t0.Add(time.Second))
	retry = batch(1, 2, 3, 4)
	assert.Equal(t, 3, l.Skip(key, retry, t0.Add(2*time.Second)))
	assert.Equal(t, []byte{4}, ids(retry))

	l.Done(key)
	assert.False(t, l.Pending())
	assert.Zero(t, l.IDs())
	retry = batch(1, 2, 3, 4)
	assert.Zero(t, l.Skip(key, retry, t0.Add(3*time.Second)), "another batch with these spans is new")
}

func TestLedgerForgetsOldBatchesAndBoundsItsMemory(t *testing.T) {
	l := New(time.Minute, 4)
	a, b := Key(batch(1, 2)), Key(batch(3, 4))
	l.Record(a, batch(1, 2), t0)
	l.Record(b, batch(3, 4), t0.Add(30*time.Second))
	assert.Equal(t, 4, l.IDs())

	// A third batch takes the ledger over maxIDs: the oldest goes.
	c := Key(batch(5))
	l.Record(c, batch(5), t0.Add(31*time.Second))
	assert.Equal(t, 3, l.IDs())
	assert.Zero(t, l.Skip(a, batch(1, 2), t0.Add(31*time.Second)))

	// Past the TTL, b goes; c stays.
	assert.Zero(t, l.Skip(b, batch(3, 4), t0.Add(90*time.Second)))
	assert.Equal(t, 1, l.Skip(c, batch(5), t0.Add(90*time.Second)))
	assert.Equal(t, 1, l.IDs())
}

// A batch done and refused again later is a new entry, evicted in its own turn: its earlier
// place in the order is not its place.
func TestLedgerEvictsOldestLiveEntryFirst(t *testing.T) {
	l := New(time.Minute, 3)
	a, c := Key(batch(1, 2)), Key(batch(3, 4))
	l.Record(a, batch(1), t0)
	l.Done(a)
	l.Record(c, batch(3), t0.Add(time.Second))
	l.Record(a, batch(2), t0.Add(2*time.Second))
	l.Record(Key(batch(5, 6)), batch(5, 6), t0.Add(3*time.Second)) // 4 IDs: one batch goes
	assert.Zero(t, l.Skip(c, batch(3, 4), t0.Add(4*time.Second)), "c was the oldest")
	assert.Equal(t, 1, l.Skip(a, batch(1, 2), t0.Add(4*time.Second)), "a's second entry stays")
}
