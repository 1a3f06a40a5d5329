package diffusion_test

import (
	"context"
	"image/png"
	"log"
	"os"

	"github.com/sdgo/sdgo/diffusion"
)

// Generating an image with SDXL-Turbo, downloaded from the Hugging Face Hub on
// first use.
func Example() {
	ctx := context.Background()
	p, err := diffusion.Load(ctx, "stabilityai/sdxl-turbo", diffusion.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	gen, err := diffusion.NewGenerator("cpu", 42)
	if err != nil {
		log.Fatal(err)
	}
	res, err := p.Generate(ctx, diffusion.Request{
		Prompt: "a cinematic shot of a raccoon", Steps: 1, Width: 512, Height: 512,
		Generator: gen, Scheduler: "euler_a",
	})
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Create("raccoon.png")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, res.Images[0]); err != nil {
		log.Fatal(err)
	}
}
