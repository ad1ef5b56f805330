package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Memory is what /proc/PID/status says of a process's memory.
type Memory struct {
	RSS int64 `json:"rss_bytes"` // VmRSS: resident now
	HWM int64 `json:"hwm_bytes"` // VmHWM: the most ever resident
}

// parseStatus reads VmRSS and VmHWM from the text of /proc/PID/status
// ("VmRSS:\t    5120 kB").
func parseStatus(text string) (Memory, error) {
	var m Memory
	found := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("status: %s: want \"<n> kB\", got %q", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("status: %s: %w", key, err)
		}
		*dst = kb * 1024
		found++
	}
	if found != 2 {
		return Memory{}, fmt.Errorf("status: VmRSS or VmHWM missing (a zombie, or not Linux?)")
	}
	return m, nil
}
