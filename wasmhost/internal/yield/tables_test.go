package yield

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func tableMax(rt byte, min, max uint32) []byte {
	return cat([]byte{rt, 0x01}, uleb(nil, uint64(min)), uleb(nil, uint64(max)))
}

// growModule has the given tables and, for each table x, an export "grow<x>"
// growing it by its argument:
//
//	(func (export "grow0") (param $n i32) (result i32) (table.grow 0 (ref.null <its type>) (local.get $n)))
func growModule(tables ...[]byte) []byte {
	var funcs []uint32
	var exports, bodies [][]byte
	for x := range tables {
		funcs = append(funcs, 0)
		exports = append(exports, exportFunc("grow"+string(rune('0'+x)), uint32(x)))
		bodies = append(bodies, code(nil, op(opRefNull, tables[x][0]), localGet(0), misc(15, uint32(x))))
	}
	return module(
		typeSec(funcType([]byte{i32}, []byte{i32})),
		functionSec(funcs...),
		tableSec(tables...),
		exportSec(exports...),
		codeSec(bodies...),
	)
}

// TestMaxTableEntries: with a cap, the defined tables cannot grow (table.grow
// returns -1) past it, all together; the headroom goes to the tables in
// order, each up to its own maximum.
func TestMaxTableEntries(t *testing.T) {
	cfg := testConfig
	cfg.MaxTableEntries = 100
	const refused = 1<<32 - 1 // -1
	cases := []struct {
		name   string
		tables [][]byte
		grows  []uint64 // table x grows by grows[2x], expecting grows[2x+1]
	}{
		// The prober's (table 0 funcref) growing by 2^26.
		{"no max", [][]byte{table(fref, 0)}, []uint64{1 << 26, refused}},
		{"no max, to the cap", [][]byte{table(fref, 10)}, []uint64{90, 10}},
		{"no max, past the cap", [][]byte{table(fref, 10)}, []uint64{91, refused}},
		{"max kept", [][]byte{tableMax(fref, 10, 50)}, []uint64{41, refused}},
		{"max lowered", [][]byte{tableMax(xref, 10, 1000)}, []uint64{91, refused}},
		// 15 initial entries: 85 more, 40 of them to the first table.
		{"two tables", [][]byte{tableMax(fref, 10, 50), table(fref, 5)}, []uint64{40, 10, 45, 5}},
		{"two tables, second past", [][]byte{tableMax(fref, 10, 50), table(fref, 5)}, []uint64{40, 10, 46, refused}},
		{"first takes all", [][]byte{table(fref, 10), table(fref, 5)}, []uint64{85, 10, 1, refused}},
	}
	for _, c := range cases {
		h := newHost(t, 10)
		m := h.mustInstantiate(mustInstrument(t, growModule(c.tables...), cfg))
		for x := range c.tables {
			name := "grow" + string(rune('0'+x))
			if got := call1(t, m, name, c.grows[2*x])[0]; got != c.grows[2*x+1] {
				t.Errorf("%s: %s(%d) = %d, want %d", c.name, name, c.grows[2*x], int32(got), int32(c.grows[2*x+1]))
			}
		}
	}

	// Over the cap from the start: refused before any instance exists.
	for name, tables := range map[string][][]byte{
		"one":    {table(fref, 101)},
		"two":    {table(fref, 60), tableMax(fref, 41, 41)},
		"2^27":   {table(fref, 1<<27)},
		"2^32-1": {table(fref, 1<<32-1)},
	} {
		_, err := Instrument(growModule(tables...), cfg)
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "limit 100") {
			t.Errorf("%s: %v, want ErrLimit", name, err)
		}
	}
	if _, err := Instrument(growModule(table(fref, 100)), cfg); err != nil {
		t.Errorf("100 initial entries: %v", err)
	}

	// A maximum below the minimum: invalid, with or without a cap.
	for _, cfg := range []Config{testConfig, cfg} {
		if _, err := Instrument(growModule(tableMax(fref, 10, 9)), cfg); !errors.Is(err, ErrMalformed) {
			t.Errorf("max < min: %v, want ErrMalformed", err)
		}
	}

	// Without a cap the table section is copied unchanged.
	in := growModule(table(fref, 3), tableMax(fref, 1, 1<<30))
	if out := mustInstrument(t, in, testConfig); !bytes.Contains(out, tableSec(table(fref, 3), tableMax(fref, 1, 1<<30)).body) {
		t.Error("table section changed without a cap")
	}
}
