package asm

import (
	"math"

	"github.com/x448/float16"
)

func f16Scalar(h uint16) float32  { return float16.Frombits(h).Float32() }
func bf16Scalar(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
