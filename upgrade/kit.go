package upgrade

// stockKit makes the next upgrade's kit now, while nothing waits for it,
// unless there is one or the generation is not live and serving (stopped,
// upgrading, handed over, retired by a rollback). It is called once the
// generation is live (at the end of a first generation's Ready, once a
// new generation's parent has exited) and after an upgrade that failed,
// so that a signal finds the kit made and the busy old process starts
// the child sooner; an upgrade before that makes its own. A kit that
// cannot be made is not reported here: the upgrade makes its own and says
// what failed.
func (u *Upgrader) stockKit() {
	if u.opts.ForeignChild {
		return // a foreign child is started with none of it
	}
	if !u.wantKit() {
		return
	}
	k, err := newKit()
	if err != nil {
		return
	}
	u.mu.Lock()
	if u.wantKitLocked() {
		u.kit, k = k, nil
	}
	u.mu.Unlock()
	if k != nil {
		k.close()
	}
}

// dropKit closes the kit made ahead, if there is one.
func (u *Upgrader) dropKit() {
	u.mu.Lock()
	k := u.kit
	u.kit = nil
	u.mu.Unlock()
	if k != nil {
		k.close()
	}
}

// wantKit reports whether stockKit should make a kit: this generation
// serves, may upgrade, and has none.
func (u *Upgrader) wantKit() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.wantKitLocked()
}

func (u *Upgrader) wantKitLocked() bool {
	return u.kit == nil && u.phase == live && !u.stopped && !u.retired
}
