package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBuckets(t *testing.T) {
	last := -1
	for v := uint64(0); v < 1<<16; v++ {
		b := bucketOf(v)
		assert.GreaterOrEqual(t, b, last, "buckets must be monotonic")
		last = b
	}
	assert.Less(t, bucketOf(^uint64(0)), numBuckets)
	for range 10000 {
		v := rand.Uint64N(1 << 62)
		mid := float64(bucketMid(bucketOf(v)))
		assert.InEpsilon(t, float64(v)+1, mid+1, 1.0/32, "v=%d", v)
	}
}

func TestQuantile(t *testing.T) {
	var h histogram
	assert.Zero(t, h.quantile(0.5))

	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	assert.InEpsilon(t, 500*time.Microsecond, h.quantile(0.50), 0.035)
	assert.InEpsilon(t, 990*time.Microsecond, h.quantile(0.99), 0.035)
	assert.Equal(t, 1000*time.Microsecond, h.max)
	assert.LessOrEqual(t, h.quantile(1), h.max)

	var m histogram
	m.add(time.Hour)
	m.add(-1) // a clock step must not break anything
	m.merge(&h)
	assert.Equal(t, int64(1002), m.n)
	assert.Equal(t, time.Hour, m.max)
	assert.Equal(t, time.Hour, m.quantile(1))
}
