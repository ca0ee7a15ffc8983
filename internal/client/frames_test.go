package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/banger-dev/banger/internal/api"
)

// Frames are decoded with segmentio/encoding/json for speed: every field
// of the results the CLI reads must come out as encoding/json decodes it.
// fill sets every field (through pointers, slices and embedded structs),
// so a field added to the API later is covered too.
func TestFramesDecodeAsEncodingJSON(t *testing.T) {
	strs := []string{"plain", "ünïcødé ✓", "quote\" back\\slash", "ctl\t\n\x01", "\u2028\u2029<&>", "\xff invalid utf-8"}
	for i, s := range strs {
		for _, v := range []any{&api.VMListResult{}, &api.VMSummariesResult{}, &api.DaemonInfo{}, &api.ImageListResult{}, &api.VMHealthResult{}} {
			fill(reflect.ValueOf(v).Elem(), s, i)
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			frame := append(append([]byte(`{"progress":{"step":"x"}}`+"\n"+`{"result":`), b...), "}\n"...)
			want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			for _, size := range []int64{-1, int64(len(frame))} { // streamed, and with its length
				got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
				if err := readFrames(bytes.NewReader(frame), size, got, nil); err != nil {
					t.Fatalf("%T (size %d): %v", v, size, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%T with %q (size %d) decoded as\n%+v\nencoding/json:\n%+v", v, s, size, got, want)
				}
			}
		}
	}
	e := &api.Error{Code: api.CodeConflict, Message: strs[1], Hint: strs[2]}
	b, _ := json.Marshal(api.Frame{Error: e})
	err := readFrames(bytes.NewReader(append(b, '\n')), int64(len(b)+1), nil, nil)
	if ae, ok := err.(*api.Error); !ok || *ae != *e {
		t.Fatalf("error frame decoded as %#v", err)
	}
}

// fill gives every settable field of v a non-zero value from s and n.
func fill(v reflect.Value, s string, n int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(n*1000003 + 7))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(n*31 + 3))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(n) + 0.25)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), s, n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), s, n+i)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, s, n)
		fill(e, s, n)
		v.SetMapIndex(k, e)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 4, 21, 0, n, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), s, n)
			}
		}
	}
}

// A result larger than the reader's buffer is gathered whole, and the
// gathered buffer reused by the next call holds nothing of the last one.
func TestLargeFramesReadWhole(t *testing.T) {
	for _, n := range []int{1500, 3, 700} {
		var res api.VMListResult
		fill(reflect.ValueOf(&res).Elem(), "vm", n)
		res.VMs = make([]api.VM, n)
		for i := range res.VMs {
			fill(reflect.ValueOf(&res.VMs[i]).Elem(), fmt.Sprintf("vm-%d", i), i)
		}
		b, _ := json.Marshal(res)
		big := append(append([]byte(`{"progress":{"step":"`+strings.Repeat("p", 100<<10)+`"}}`+"\n"+`{"result":`), b...), "}\n"...)
		for _, size := range []int64{-1, int64(len(big))} { // streamed, and with its length
			var got api.VMListResult
			var steps int
			if err := readFrames(bytes.NewReader(big), size, &got, func(api.Progress) { steps++ }); err != nil {
				t.Fatalf("%d VMs (size %d): %v", n, size, err)
			}
			if steps != 1 || !reflect.DeepEqual(got, res) {
				t.Fatalf("%d VMs (%d bytes, size %d): got %d VMs, %d progress frames", n, len(b), size, len(got.VMs), steps)
			}
		}
	}
}

// A reply cut short of its announced length (bangerd died while writing
// it) is an error, not a partial result.
func TestCutReplyIsAnError(t *testing.T) {
	b, _ := json.Marshal(api.VMSummariesResult{VMs: []api.VMSummary{{Name: "dev"}, {Name: "web"}}})
	frame := append(append([]byte(`{"result":`), b...), "}\n"...)
	for _, cut := range []int{len(frame) - 2, len(frame) / 2, 0} {
		var got api.VMSummariesResult
		err := readFrames(bytes.NewReader(frame[:cut]), int64(len(frame)), &got, nil)
		if err == nil {
			t.Errorf("a reply cut at %d of %d bytes decoded as %+v", cut, len(frame), got)
		}
	}
}
