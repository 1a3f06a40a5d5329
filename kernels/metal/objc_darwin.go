//go:build darwin

package metal

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// This file binds what the backend uses of Metal and Foundation through the
// Objective-C runtime (purego's objc package: objc_msgSend without cgo).

const (
	metalPath        = "/System/Library/Frameworks/Metal.framework/Metal"
	foundationPath   = "/System/Library/Frameworks/Foundation.framework/Foundation"
	coreGraphicsPath = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
)

// Values of Metal enumerations.
const (
	mtlResourceStorageModeShared = 0 // MTLResourceOptions
	mtlCommandBufferStatusError  = 5 // MTLCommandBufferStatus
	mtlGPUFamilyApple7           = 1007
)

// mtlSize is MTLSize: three NSUInteger.
type mtlSize struct {
	Width, Height, Depth uint
}

var (
	loadOnce sync.Once
	loadErr  error

	mtlCreateSystemDefaultDevice func() objc.ID
	mtlCopyAllDevices            func() objc.ID

	classNSString, classNSAutoreleasePool, classMTLCompileOptions objc.ID

	sel struct {
		alloc, init, release, retain, drain                    objc.SEL
		initWithUTF8String, utf8String, localizedDescription   objc.SEL
		count, objectAtIndex                                   objc.SEL
		name, newCommandQueue, newBufferWithLength, contents   objc.SEL
		setLanguageVersion, setFastMathEnabled                 objc.SEL
		newLibraryWithSource, newFunctionWithName              objc.SEL
		newComputePipelineState, maxTotalThreadsPerThreadgroup objc.SEL
		threadExecutionWidth                                   objc.SEL
		commandBuffer, computeCommandEncoder, endEncoding      objc.SEL
		setComputePipelineState, setBuffer, setBytes           objc.SEL
		dispatchThreadgroups, commit, waitUntilCompleted       objc.SEL
		status, error                                          objc.SEL
		supportsFamily                                         objc.SEL
	}
)

// load opens Metal.framework and resolves the classes and selectors, once.
func load() error {
	loadOnce.Do(func() { loadErr = loadMetal() })
	return loadErr
}

func loadMetal() error {
	lib, err := purego.Dlopen(metalPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("%w: loading %s: %v", ErrNoDevice, metalPath, err)
	}
	if _, err := purego.Dlopen(foundationPath, purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
		return fmt.Errorf("%w: loading %s: %v", ErrNoDevice, foundationPath, err)
	}
	// A command-line program that has not loaded CoreGraphics may get no device
	// from MTLCreateSystemDefaultDevice; loading it is harmless otherwise.
	_, _ = purego.Dlopen(coreGraphicsPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	for name, fn := range map[string]any{
		"MTLCreateSystemDefaultDevice": &mtlCreateSystemDefaultDevice,
		"MTLCopyAllDevices":            &mtlCopyAllDevices,
	} {
		sym, err := purego.Dlsym(lib, name)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNoDevice, name, err)
		}
		purego.RegisterFunc(fn, sym)
	}
	for name, c := range map[string]*objc.ID{
		"NSString":          &classNSString,
		"NSAutoreleasePool": &classNSAutoreleasePool,
		"MTLCompileOptions": &classMTLCompileOptions,
	} {
		if *c = objc.ID(objc.GetClass(name)); *c == 0 {
			return fmt.Errorf("%w: no Objective-C class %s", ErrNoDevice, name)
		}
	}
	s := &sel
	for p, name := range map[*objc.SEL]string{
		&s.alloc: "alloc", &s.init: "init", &s.release: "release", &s.retain: "retain", &s.drain: "drain",
		&s.initWithUTF8String: "initWithUTF8String:", &s.utf8String: "UTF8String",
		&s.localizedDescription: "localizedDescription",
		&s.count:                "count", &s.objectAtIndex: "objectAtIndex:",
		&s.name: "name", &s.newCommandQueue: "newCommandQueue",
		&s.newBufferWithLength: "newBufferWithLength:options:", &s.contents: "contents",
		&s.setLanguageVersion: "setLanguageVersion:", &s.setFastMathEnabled: "setFastMathEnabled:",
		&s.newLibraryWithSource:          "newLibraryWithSource:options:error:",
		&s.newFunctionWithName:           "newFunctionWithName:",
		&s.newComputePipelineState:       "newComputePipelineStateWithFunction:error:",
		&s.maxTotalThreadsPerThreadgroup: "maxTotalThreadsPerThreadgroup",
		&s.threadExecutionWidth:          "threadExecutionWidth",
		&s.commandBuffer:                 "commandBuffer", &s.computeCommandEncoder: "computeCommandEncoder",
		&s.endEncoding: "endEncoding", &s.setComputePipelineState: "setComputePipelineState:",
		&s.setBuffer: "setBuffer:offset:atIndex:", &s.setBytes: "setBytes:length:atIndex:",
		&s.dispatchThreadgroups: "dispatchThreadgroups:threadsPerThreadgroup:",
		&s.commit:               "commit", &s.waitUntilCompleted: "waitUntilCompleted",
		&s.status: "status", &s.error: "error", &s.supportsFamily: "supportsFamily:",
	} {
		*p = objc.RegisterName(name)
	}
	return nil
}

// newString returns a new NSString holding s (owned: release it).
func newString(s string) objc.ID {
	b := append([]byte(s), 0)
	id := classNSString.Send(sel.alloc).Send(sel.initWithUTF8String, unsafe.Pointer(&b[0]))
	return id
}

// goString returns the text of an NSString ("" for nil).
func goString(ns objc.ID) string {
	if ns == 0 {
		return ""
	}
	return objc.Send[string](ns, sel.utf8String)
}

// errorText returns an NSError's localizedDescription, or what when err is nil.
func errorText(err objc.ID, what string) string {
	if err == 0 {
		return what
	}
	if s := goString(err.Send(sel.localizedDescription)); s != "" {
		return s
	}
	return what
}

// newPool pushes an autorelease pool; drain it on the same OS thread.
func newPool() objc.ID {
	return classNSAutoreleasePool.Send(sel.alloc).Send(sel.init)
}

func release(id objc.ID) {
	if id != 0 {
		id.Send(sel.release)
	}
}
