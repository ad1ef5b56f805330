//go:build unix

package readiness_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/handoff-go/handoff/readiness"
)

func ExampleWait() {
	parent, child, err := readiness.Pair()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer parent.Close()

	// Normally child goes into the ExtraFiles of a program being
	// started, which reports with Ready or Fail and exits or carries on.
	// Here a goroutine stands in for it.
	go func() {
		defer child.Close()
		readiness.Fail(child, "listen tcp :80: bind: permission denied\n")
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = readiness.Wait(ctx, parent)
	var failed *readiness.FailedError
	switch {
	case err == nil:
		fmt.Println("ready")
	case errors.As(err, &failed):
		fmt.Println("program failed:", failed.Reason)
	case errors.Is(err, readiness.ErrClosed):
		fmt.Println("program exited before it was ready")
	default:
		fmt.Println(err)
	}
	// Output: program failed: listen tcp :80: bind: permission denied
}

func ExamplePair() {
	parent, child, err := readiness.Pair()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer parent.Close()

	// The started program's side.
	go func() {
		defer child.Close()
		readiness.Ready(child)
	}()

	fmt.Println("wait:", readiness.Wait(context.Background(), parent))
	// Output: wait: <nil>
}
