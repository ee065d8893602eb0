package sampler

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// hashSeed is per process: trace IDs a client chose cannot be made to collide on purpose in
// the index, where collisions cost probes.
var hashSeed = maphash.MakeSeed()

func hashID(id pcommon.TraceID) uint64 { return maphash.Comparable(hashSeed, id) }

// fingerprint is a trace's 64-bit name in the decision caches and for its shard. Unlike
// hashID it is the same in every process: decisions persisted at shutdown find their traces
// after a restart.
func fingerprint(id pcommon.TraceID) uint64 {
	return mix64(binary.LittleEndian.Uint64(id[:8]) ^ mix64(binary.LittleEndian.Uint64(id[8:])))
}

// mix64 is splitmix64's finalizer: every input bit moves every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// index finds a shard's slot by trace ID: open addressing with linear probing over slot
// numbers (4 bytes an entry), the IDs themselves being in the slots. A Go map would cost
// five to ten times as much per trace in flight.
type index struct {
	table []int32 // slot number + 1; 0 is empty
	n     int
}

const minIndexSize = 64

func (x *index) bytes() int64 { return int64(cap(x.table)) * int64(unsafe.Sizeof(int32(0))) }

func (x *index) mask() uint64 { return uint64(len(x.table) - 1) }

// find returns the slot of id, or -1.
func (x *index) find(h uint64, id pcommon.TraceID, slots []slot) int32 {
	if len(x.table) == 0 {
		return -1
	}
	for pos := h & x.mask(); ; pos = (pos + 1) & x.mask() {
		e := x.table[pos]
		if e == 0 {
			return -1
		}
		if slots[e-1].id == id {
			return e - 1
		}
	}
}

// insert adds slot si, whose ID is not in the index yet.
func (x *index) insert(h uint64, si int32, slots []slot) {
	if (x.n+1)*4 > len(x.table)*3 {
		x.resize(max(minIndexSize, 2*len(x.table)), slots)
	}
	x.put(h, si)
	x.n++
}

func (x *index) put(h uint64, si int32) {
	pos := h & x.mask()
	for x.table[pos] != 0 {
		pos = (pos + 1) & x.mask()
	}
	x.table[pos] = si + 1
}

// remove deletes slot si, shifting back the entries after it so no probe sequence breaks.
func (x *index) remove(h uint64, si int32, slots []slot) {
	m := x.mask()
	pos := h & m
	for x.table[pos] != si+1 {
		pos = (pos + 1) & m
	}
	x.table[pos] = 0
	x.n--
	for next := (pos + 1) & m; x.table[next] != 0; next = (next + 1) & m {
		home := hashID(slots[x.table[next]-1].id) & m
		// The entry may move into the hole if the hole lies between its home and its place.
		if (next-home)&m >= (next-pos)&m {
			x.table[pos], x.table[next] = x.table[next], 0
			pos = next
		}
	}
}

// resize rebuilds the table with size entries (a power of two) from the live slots.
func (x *index) resize(size int, slots []slot) {
	old := x.table
	x.table = make([]int32, size)
	for _, e := range old {
		if e != 0 {
			x.put(hashID(slots[e-1].id), e-1)
		}
	}
}

// rebuild indexes exactly the given slots, sized for them.
func (x *index) rebuild(slots []slot, live []int32) {
	size := minIndexSize
	for size*3 < len(live)*4+4 {
		size *= 2
	}
	x.table, x.n = make([]int32, size), len(live)
	for _, si := range live {
		x.put(hashID(slots[si].id), si)
	}
}
