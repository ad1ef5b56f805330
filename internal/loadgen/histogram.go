package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts latencies in fixed log-scale buckets: exact below 16ns,
// then 16 buckets per power of two, so a bucket's midpoint is within about
// 3% of any value in it. Its size is fixed (under 8 KiB) however long the
// load runs. The zero value is empty and ready to use.
type histogram struct {
	counts [numBuckets]int64
	n      int64
	max    time.Duration
}

const (
	subBits    = 4
	subCount   = 1 << subBits
	numBuckets = (64-subBits)*subCount + subCount
)

// bucketOf returns the bucket that counts v nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	sub := int(v>>shift) & (subCount - 1)
	return (shift+1)*subCount + sub
}

// bucketMid returns the midpoint, in nanoseconds, of the values bucket i counts.
func bucketMid(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	low := uint64(subCount+i%subCount) << shift
	return low + (uint64(1)<<shift)/2
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the approximate latency below which a fraction q of the
// samples fall, or 0 if there are none. It never exceeds the exact maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := min(max(int64(math.Ceil(q*float64(h.n))), 1), h.n)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), h.max)
		}
	}
	return h.max
}
