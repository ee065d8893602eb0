package sampler

import "time"

// relievePressure brings what is held back within max_buffer_bytes, which bounds all shards
// together, visiting them one at a time (never two locks at once). First parked spans move to
// the spill (spillNewest says which); then the spans held for rescue are given up; then, unless
// the caller holds input back instead (block_on_overflow), the oldest traces are decided,
// having told the most about themselves, and only when none is left the oldest roots awaiting
// their model call leave with what their traces showed (counted by RootWaited: a guard match
// that nothing has followed yet leaves as blocked). Each step frees what it takes, so no more
// traces are decided than the budget needs, and a trace as large as a shard's share cannot
// make its neighbours go first.
func (s *Sampler) relievePressure(now time.Time, out *output) {
	s.relieving.Lock()
	defer s.relieving.Unlock()
	if s.cfg.Spill != nil || s.cfg.Journal != nil {
		s.eachShard(func(sh *shard) bool { return s.spillNewest(sh) })
	}
	s.eachShard(func(sh *shard) bool {
		for si := sh.timers[listRescuable].head; si >= 0 && s.overTarget(); si = sh.timers[listRescuable].head {
			s.forget(sh, si, now)
		}
		return true
	})
	if !s.cfg.DecideOnPressure {
		return
	}
	// Round by round, each shard decides its oldest trace: the oldest overall go first.
	for _, oldest := range [...]func(*shard) int32{
		func(sh *shard) int32 { return sh.fifo.head },
		func(sh *shard) int32 { return sh.timers[listAwaiting].head },
	} {
		for s.overTarget() {
			decided := false
			s.eachShard(func(sh *shard) bool {
				if si := oldest(sh); si >= 0 {
					s.finish(sh, si, TriggerPressure, now, out)
					decided = true
				}
				return true
			})
			if !decided {
				break
			}
		}
	}
}

// overTarget reports whether relief must go on: it stops a little below the budget, so that
// the next batches do not each set it off again.
func (s *Sampler) overTarget() bool {
	held, _ := s.Held()
	return held > s.cfg.MaxBufferBytes-s.cfg.MaxBufferBytes/32
}

// eachShard calls f with each shard locked, while over the target and f returns true.
func (s *Sampler) eachShard(f func(*shard) bool) {
	for _, sh := range s.shards {
		if !s.overTarget() {
			return
		}
		sh.mu.Lock()
		more := f(sh)
		s.account(sh)
		sh.mu.Unlock()
		if !more {
			return
		}
	}
}

// maxSpillScan bounds how many traces one call looks at for spans still in memory.
const maxSpillScan = 256

// spillNewest moves parked spans of a shard to disk while over budget: first those held
// for rescue, which come back only if a late error does, then the roots awaiting their model
// call, longest waiting first (most of those wait out model_call_wait), then those of the
// newest traces, whose decisions are furthest away. It reports false when the spill refused.
func (s *Sampler) spillNewest(sh *shard) bool {
	return s.spillWalk(sh, sh.timers[listRescuable].tail, func(t *slot) int32 { return t.timer.prev }) &&
		s.spillWalk(sh, sh.timers[listAwaiting].head, func(t *slot) int32 { return t.timer.next }) &&
		s.spillWalk(sh, sh.fifo.tail, func(t *slot) int32 { return t.fifo.prev })
}

// spillWalk spills the parked spans of the traces from `from` on, following next.
func (s *Sampler) spillWalk(sh *shard, from int32, next func(*slot) int32) bool {
	for si, n := from, 0; si >= 0 && n < maxSpillScan && s.overTarget(); si, n = next(&sh.slots[si]), n+1 {
		spilled, err := sh.store.Spill(si, &sh.slots[si].parked)
		if err != nil {
			s.obs.SpillFailed(err)
			return false
		}
		if spilled {
			s.account(sh) // the store's own bookkeeping counts too
		}
	}
	return true
}
