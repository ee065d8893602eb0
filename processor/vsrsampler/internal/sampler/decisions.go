package sampler

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
)

// decisionsMagic starts the encoding of the decision caches (version 1).
const decisionsMagic = "vsrdec1\n"

// SaveDecisions encodes the decision caches, so that after a restart the spans of traces
// decided before it follow their decisions instead of starting traces of their own.
func (s *Sampler) SaveDecisions() []byte {
	var keep, drop []uint64
	for _, sh := range s.shards {
		sh.mu.Lock()
		for i, k := range sh.keep.keys {
			if k != 0 {
				keep = append(keep, k, sh.keep.vals[i].Unsigned())
			}
		}
		for _, k := range sh.drop.keys {
			if k != 0 {
				drop = append(drop, k)
			}
		}
		sh.mu.Unlock()
	}
	out := make([]byte, 0, len(decisionsMagic)+16+8*(len(keep)+len(drop)))
	out = append(out, decisionsMagic...)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(keep)/2))
	out = binary.LittleEndian.AppendUint64(out, uint64(len(drop)))
	for _, x := range append(keep, drop...) {
		out = binary.LittleEndian.AppendUint64(out, x)
	}
	return out
}

// RestoreDecisions puts decisions saved by SaveDecisions back, whatever the shard counts.
func (s *Sampler) RestoreDecisions(data []byte) error {
	if len(data) < len(decisionsMagic)+16 || string(data[:len(decisionsMagic)]) != decisionsMagic {
		return errors.New("saved decisions: not in the format this version writes")
	}
	data = data[len(decisionsMagic):]
	keeps, drops := binary.LittleEndian.Uint64(data), binary.LittleEndian.Uint64(data[8:])
	data = data[16:]
	if keeps > uint64(len(data))/16 || drops != (uint64(len(data))-16*keeps)/8 || uint64(len(data)) != 16*keeps+8*drops {
		return fmt.Errorf("saved decisions: %d bytes hold neither %d kept nor %d dropped traces", len(data), keeps, drops)
	}
	word := func(i uint64) uint64 { return binary.LittleEndian.Uint64(data[8*i:]) }
	for i := range keeps {
		th, err := sampling.UnsignedToThreshold(word(2*i + 1))
		if err != nil {
			return fmt.Errorf("saved decisions: %w", err)
		}
		s.shardByFingerprint(word(2*i)).putKept(word(2*i), th)
	}
	for i := range drops {
		s.shardByFingerprint(word(2*keeps + i)).putDropped(word(2*keeps + i))
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
		s.account(sh)
		sh.mu.Unlock()
	}
	return nil
}

func (s *Sampler) shardByFingerprint(fp uint64) *shard { return s.shards[shardOf(fp, len(s.shards))] }

func (sh *shard) putKept(fp uint64, th sampling.Threshold) {
	sh.mu.Lock()
	sh.keep.put(fp, th)
	sh.mu.Unlock()
}

func (sh *shard) putDropped(fp uint64) {
	sh.mu.Lock()
	sh.drop.put(fp, struct{}{})
	sh.mu.Unlock()
}

// SaveRates encodes what dynamic sampling knows of the traffic at now, or returns nil when it
// is off or has not yet measured a whole second.
func (s *Sampler) SaveRates(now time.Time) []byte {
	if s.dynamic == nil {
		return nil
	}
	r := s.dynamic.save(now)
	if r.Arrivals <= 0 {
		return nil
	}
	out, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return out
}

// RestoreRates starts dynamic sampling from rates SaveRates encoded; it reports whether they
// were recent enough and measured for the same configuration to be used.
func (s *Sampler) RestoreRates(data []byte, now time.Time) (bool, error) {
	if s.dynamic == nil {
		return false, nil
	}
	var r savedRates
	if err := json.Unmarshal(data, &r); err != nil {
		return false, fmt.Errorf("saved rates: %w", err)
	}
	return s.dynamic.restore(r, now), nil
}
