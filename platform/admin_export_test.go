package platform

// HoldRoutes takes the lock under which a deploy or rollback checks its
// routes and writes to the registry, and returns its release: a test can
// keep a request waiting after it has read its body.
func (a *Admin) HoldRoutes() (release func()) {
	a.routesMu.Lock()
	return a.routesMu.Unlock
}
