package protocol

import "testing"

func TestValidCloseCode(t *testing.T) {
	valid := []int64{1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4999}
	invalid := []int64{-1, 0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535, 1<<32 + 1000}
	for _, c := range valid {
		if !ValidCloseCode(c) {
			t.Errorf("ValidCloseCode(%d) = false, want true", c)
		}
	}
	for _, c := range invalid {
		if ValidCloseCode(c) {
			t.Errorf("ValidCloseCode(%d) = true, want false", c)
		}
	}
}
