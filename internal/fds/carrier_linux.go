package fds

import "golang.org/x/sys/unix"

// carrierWorks says whether sockets can be adopted through a carrier.
const carrierWorks = true

// dupOnto points descriptor to at what from refers to, close-on-exec.
func dupOnto(from, to int) error { return unix.Dup3(from, to, unix.O_CLOEXEC) }
