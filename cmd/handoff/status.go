package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/handoff-go/handoff/internal/control"
)

func printStatus(w io.Writer, st *control.Status, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return
	}
	fmt.Fprintf(w, "pid:         %d\n", st.PID)
	if st.Supervisor {
		fmt.Fprintf(w, "worker pid:  %d (supervised)\n", st.WorkerPID)
	}
	if st.Version != "" {
		fmt.Fprintf(w, "version:     %s\n", st.Version)
	}
	fmt.Fprintf(w, "generation:  %d\n", st.Generation)
	fmt.Fprintf(w, "started:     %s (%s ago)\n", st.StartedAt.Format(time.RFC3339), time.Since(st.StartedAt).Round(time.Second))
	fmt.Fprintf(w, "listeners:   %s\n", strings.Join(st.Listeners, ", "))
	if len(st.Draining) > 0 {
		fmt.Fprintf(w, "draining:    %v\n", st.Draining)
	}
	if p := st.Parked; p != nil {
		fmt.Fprintf(w, "parked:      PID %d, rollback window open for %.1fs more (`handoff rollback` takes it back)\n", p.PID, p.LeftMS/1000)
	}
	if st.RolledBack != "" {
		fmt.Fprintf(w, "rolled back: %s\n", st.RolledBack)
	}
	if r := st.LastUpgrade; r != nil {
		if r.OK {
			fmt.Fprintf(w, "last upgrade: ok at %s: PID %d -> %d in %.1f ms\n", r.StartedAt.Format(time.RFC3339), r.OldPID, r.NewPID, r.TookMS)
		} else {
			fmt.Fprintf(w, "last upgrade: FAILED at %s (%s): %s\n", r.StartedAt.Format(time.RFC3339), r.Stage, r.Error)
		}
	}
}
