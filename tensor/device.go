package tensor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DeviceOpener opens device number index of a kind of device as a Backend.
type DeviceOpener func(index int) (Backend, error)

var devices struct {
	sync.Mutex
	open map[string]DeviceOpener
}

// RegisterDevice makes a kind of device available to OpenDevice under name
// ("cuda"). Device packages call it from init, so that a program that imports
// one (for its side effect, as database/sql drivers are imported) can open
// it by name. Registering a name twice panics.
func RegisterDevice(name string, open DeviceOpener) {
	devices.Lock()
	defer devices.Unlock()
	if devices.open == nil {
		devices.open = map[string]DeviceOpener{}
	}
	if _, dup := devices.open[name]; dup || name == "cpu" {
		panic("tensor: device " + name + " registered twice")
	}
	devices.open[name] = open
}

// Devices returns the names OpenDevice knows: "cpu" and the registered kinds.
func Devices() []string {
	devices.Lock()
	defer devices.Unlock()
	names := []string{"cpu"}
	for n := range devices.open {
		names = append(names, n)
	}
	slices.Sort(names[1:])
	return names
}

// OpenDevice opens a backend by name: "cpu" (or "") for a new CPU backend, or
// "KIND" or "KIND:INDEX" for device INDEX (0 by default) of a registered kind
// ("cuda:1"). An unknown kind's error lists the known ones.
func OpenDevice(name string) (Backend, error) {
	kind, idx, hasIdx := strings.Cut(name, ":")
	if kind == "" || kind == "cpu" {
		if hasIdx {
			return nil, fmt.Errorf("tensor: device %q: the cpu has no index", name)
		}
		return NewCPU(), nil
	}
	index := 0
	if hasIdx {
		var err error
		if index, err = strconv.Atoi(idx); err != nil || index < 0 {
			return nil, fmt.Errorf("tensor: device %q: the index must be a number from 0", name)
		}
	}
	devices.Lock()
	open := devices.open[kind]
	devices.Unlock()
	if open == nil {
		return nil, fmt.Errorf("tensor: unknown device %q (known: %s)", kind, strings.Join(Devices(), ", "))
	}
	b, err := open(index)
	if err != nil {
		return nil, fmt.Errorf("tensor: device %s: %w", name, err)
	}
	return b, nil
}

// FullPrecision switches off b's reduced-precision mode, if it has one, until
// restore is called: a backend whose matrix products can run in F16 or BF16
// (the CUDA backend's mixed precision) implements
// interface{ FullPrecision() (restore func()) }. The pipelines run a VAE whose
// config sets force_upcast this way (the SDXL VAE overflows F16), as diffusers
// upcasts it to float32. On other backends restore does nothing.
func FullPrecision(b Backend) (restore func()) {
	if f, ok := b.(interface{ FullPrecision() func() }); ok {
		return f.FullPrecision()
	}
	return func() {}
}
