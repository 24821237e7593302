package gateway

import "time"

// WithFirstNodeWait bounds how long a call of a new function waits for its
// first node (default defaultFirstNodeWait), so that a test of the bound
// does not take 10 s.
func WithFirstNodeWait(d time.Duration) Option {
	return func(o *options) error {
		o.firstNodeWait = d
		return nil
	}
}

// WithFirstNodeMaxWaiting bounds how many calls of one target wait for a
// new function's first node at once (default defaultFirstNodeMaxWaiting).
func WithFirstNodeMaxWaiting(n int32) Option {
	return func(o *options) error {
		o.firstNodeMaxWaiting = n
		return nil
	}
}

// SeriesWith counts the series of reg with label name = value.
var SeriesWith = seriesWith
