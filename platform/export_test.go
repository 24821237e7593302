package platform

// UploadsHeld is how many deploy bodies a holds slots for
// (MaxUploadsInMemory), for tests that must know the bound is reached
// before they send one more.
func (a *Admin) UploadsHeld() int { return len(a.uploads) }

// MaxDedupWaiters is how many duplicates may wait for one running request.
const MaxDedupWaiters = maxWaiters
