//go:build unix && !linux

package fds

import "errors"

// carrierWorks says whether sockets can be adopted through a carrier: not
// here, where each is wrapped in an *os.File.
const carrierWorks = false

// dupOnto is not called here (carrierWorks).
func dupOnto(from, to int) error { return errors.ErrUnsupported }
