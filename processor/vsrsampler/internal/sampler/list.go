package sampler

// links place a trace in one ordered list of its shard.
type links struct {
	prev, next *traceState
	in         bool
}

// traceList is an intrusive doubly linked list: insertion, removal and moving a trace to the
// back are O(1) and allocate nothing.
type traceList struct {
	head, tail *traceState
	links      func(*traceState) *links
}

func (l *traceList) front() *traceState { return l.head }

func (l *traceList) back() *traceState { return l.tail }

func (l *traceList) prev(t *traceState) *traceState { return l.links(t).prev }

func (l *traceList) pushBack(t *traceState) {
	lk := l.links(t)
	lk.prev, lk.next, lk.in = l.tail, nil, true
	if l.tail != nil {
		l.links(l.tail).next = t
	} else {
		l.head = t
	}
	l.tail = t
}

func (l *traceList) remove(t *traceState) {
	lk := l.links(t)
	if !lk.in {
		return
	}
	if lk.prev != nil {
		l.links(lk.prev).next = lk.next
	} else {
		l.head = lk.next
	}
	if lk.next != nil {
		l.links(lk.next).prev = lk.prev
	} else {
		l.tail = lk.prev
	}
	*lk = links{}
}

func (l *traceList) moveToBack(t *traceState) {
	l.remove(t)
	l.pushBack(t)
}
