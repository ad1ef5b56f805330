package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseCounts reads a comma-separated list of descriptor counts, such as
// "1,10,100,1000". Each must be between 1 and maxCount.
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("fd count %q is not a number", f)
		}
		if n < 1 || n > maxCount {
			return nil, fmt.Errorf("fd count %d: want 1 to %d", n, maxCount)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxCount is the most listeners a sample hands over: listenAddr has
// room for 250 per 127.1.x.0/24 network, and a parent with its
// listeners, their copies and its child's must fit in a common
// descriptor limit.
const maxCount = 5000
