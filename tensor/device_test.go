package tensor

import (
	"errors"
	"testing"
)

func TestOpenDevice(t *testing.T) {
	for _, name := range []string{"", "cpu"} {
		b, err := OpenDevice(name)
		if err != nil {
			t.Fatalf("OpenDevice(%q): %v", name, err)
		}
		if _, ok := b.(*CPU); !ok {
			t.Fatalf("OpenDevice(%q) = %T", name, b)
		}
	}
	var opened []int
	RegisterDevice("testdev", func(i int) (Backend, error) {
		opened = append(opened, i)
		if i == 7 {
			return nil, errors.New("no such unit")
		}
		return NewCPU(), nil
	})
	if _, err := OpenDevice("testdev"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDevice("testdev:3"); err != nil {
		t.Fatal(err)
	}
	if err := fmtErr(OpenDevice("testdev:7")); err != "tensor: device testdev:7: no such unit" {
		t.Errorf("error %q", err)
	}
	if len(opened) != 3 || opened[0] != 0 || opened[1] != 3 {
		t.Errorf("opened %v, want [0 3 7]", opened)
	}
	for name, want := range map[string]string{
		"metal":      `tensor: unknown device "metal" (known: cpu, testdev)`,
		"testdev:x":  `tensor: device "testdev:x": the index must be a number from 0`,
		"testdev:-1": `tensor: device "testdev:-1": the index must be a number from 0`,
		"cpu:1":      `tensor: device "cpu:1": the cpu has no index`,
	} {
		if got := fmtErr(OpenDevice(name)); got != want {
			t.Errorf("OpenDevice(%q): %q, want %q", name, got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	RegisterDevice("testdev", nil)
}

func fmtErr(_ Backend, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
