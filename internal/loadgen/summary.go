package loadgen

import "time"

// Summary is a Result reduced to its figures, in the units people read; its
// JSON form is what `nylon bench -o json` prints (under a few fields of the
// command's own) and what the end-to-end benchmark's generator process
// reports.
type Summary struct {
	// Requests completed in the measured phase, OK and failed.
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	Errors   int `json:"errors"`
	// ElapsedSeconds is the measured phase's wall time.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// RPS is successful requests per second.
	RPS float64 `json:"rps"`
	// LatencyMS are the latency percentiles of the successful requests.
	LatencyMS Latency `json:"latency_ms"`
	// CPUMicrosPerRequest is the process's CPU time (user + system,
	// getrusage) per completed request: the generator's own cost when it
	// runs alone in its process. CPUCores is that CPU time over the
	// elapsed time, the share of cores the process kept busy.
	CPUMicrosPerRequest float64 `json:"cpu_us_per_request"`
	CPUCores            float64 `json:"cpu_cores"`
	// Statuses counts responses by status code.
	Statuses       map[int]int `json:"statuses"`
	WarmupRequests int         `json:"warmup_requests,omitempty"`
	WarmupErrors   int         `json:"warmup_errors,omitempty"`
	FirstError     string      `json:"first_error,omitempty"`
	// Stopped says why the run ended early: "max-errors" or "interrupted".
	Stopped string `json:"stopped,omitempty"`
}

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Summary reduces r to its figures.
func (r *Result) Summary() Summary {
	s := Summary{
		Requests:       r.Requests,
		OK:             r.OK(),
		Errors:         r.Errors,
		ElapsedSeconds: r.Elapsed.Seconds(),
		LatencyMS: Latency{
			P50: Millis(r.Percentile(0.50)),
			P90: Millis(r.Percentile(0.90)),
			P99: Millis(r.Percentile(0.99)),
			Max: Millis(r.Max()),
		},
		Statuses:       r.Statuses,
		WarmupRequests: r.WarmupRequests,
		WarmupErrors:   r.WarmupErrors,
	}
	if s.Statuses == nil {
		s.Statuses = map[int]int{}
	}
	if r.Elapsed > 0 {
		s.RPS = float64(s.OK) / r.Elapsed.Seconds()
		s.CPUCores = r.CPU.Seconds() / r.Elapsed.Seconds()
	}
	if r.Requests > 0 {
		s.CPUMicrosPerRequest = float64(r.CPU.Nanoseconds()) / 1e3 / float64(r.Requests)
	}
	if r.FirstError != nil {
		s.FirstError = r.FirstError.Error()
	}
	switch {
	case r.Aborted:
		s.Stopped = "max-errors"
	case r.Interrupted:
		s.Stopped = "interrupted"
	}
	return s
}

// Millis returns d in milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
