package gateway

import (
	"time"

	"github.com/nylon-functions/nylon/protocol"
)

// Policy is the resolved caller policy of one plugin phase: every level of
// the configuration applied, every default filled in.
type Policy struct {
	Timeout    time.Duration // per attempt
	OnError    OnError
	Retries    int // extra attempts; made only when OnError is retry
	Backoff    Backoff
	MaxPayload int // encoded request bytes
}

// attempts is how many times a call is tried.
func (p *Policy) attempts() int {
	if p.OnError == OnErrorRetry {
		return 1 + p.Retries
	}
	return 1
}

// resolvePolicy applies phase over plugin over messaging over defaults.
// phase and plugin may be nil.
func resolvePolicy(m *MessagingConfig, plugin, phase *PhasePolicy, ph protocol.Phase) Policy {
	p := Policy{
		Timeout:    DefaultRequestTimeout,
		OnError:    DefaultOnError,
		Retries:    DefaultRetryMax,
		Backoff:    Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax, Jitter: DefaultJitter},
		MaxPayload: protocol.DefaultMaxPayload,
	}
	if ph == protocol.PhaseLogging {
		p.OnError = DefaultLoggingOnError
	}
	if m != nil {
		if m.RequestTimeoutMs > 0 {
			p.Timeout = ms(m.RequestTimeoutMs)
		}
		p.applyRetry(&m.Retry)
	}
	for _, l := range [...]*PhasePolicy{plugin, phase} {
		if l == nil {
			continue
		}
		if l.TimeoutMs > 0 {
			p.Timeout = ms(l.TimeoutMs)
		}
		if l.OnError != "" {
			p.OnError = l.OnError
		}
		p.applyRetry(&l.Retry)
		if l.MaxPayloadBytes > 0 {
			p.MaxPayload = l.MaxPayloadBytes
		}
	}
	if p.Backoff.Initial > p.Backoff.Max {
		// Levels set them separately (initial on a plugin above the
		// messaging max): the cap wins.
		p.Backoff.Initial = p.Backoff.Max
	}
	return p
}

func (p *Policy) applyRetry(r *RetryConfig) {
	if r.Max != nil {
		p.Retries = *r.Max
	}
	if r.BackoffMsInitial != nil {
		p.Backoff.Initial = ms(*r.BackoffMsInitial)
	}
	if r.BackoffMsMax != nil {
		p.Backoff.Max = ms(*r.BackoffMsMax)
	}
	if r.Jitter != "" {
		p.Backoff.Jitter = r.Jitter
	}
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
