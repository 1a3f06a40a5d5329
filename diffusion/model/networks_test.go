package model

import (
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// The networks built from a single file compute exactly what the same networks
// built from its diffusers folder compute (which the unet, vae and clip tests
// check against diffusers): same inputs, bit-identical outputs.
func TestSingleFileNetworksEqualFolder(t *testing.T) {
	for _, name := range []string{"sd15", "sd21-v", "sdxl"} {
		t.Run(name, func(t *testing.T) {
			folder, err := Load(fixture.Path(t, "models/"+name), Options{})
			require.NoError(t, err)
			defer folder.Close()
			single, err := Load(fixture.Path(t, "models/"+name+".single.safetensors"), Options{Config: fixture.Path(t, "models/"+name)})
			require.NoError(t, err)
			defer single.Close()
			cpu := tensor.NewCPU()

			runUNet := func(m *Model) []float32 {
				u, err := unet.Load(weights.Params(m.UNetWeights, cpu), m.UNet, unet.Options{})
				require.NoError(t, err)
				defer u.Release()
				in := unet.Input{Timestep: []float32{321}}
				in.Sample = ramp(t, cpu, 1, m.UNet.InChannels, 8, 8)
				in.Context = ramp(t, cpu, 1, 77, m.UNet.CrossAttentionDimAt(0))
				if m.UNet.AdditionEmbedType == "text_time" {
					in.TimeIDs = ramp(t, cpu, 1, 6)
					in.TextEmbeds = ramp(t, cpu, 1, m.UNet.ProjectionClassEmbeddingsInputDim-6*m.UNet.AdditionTimeEmbedDim)
				}
				out, err := u.Forward(in, nil)
				require.NoError(t, err)
				v, err := out.Float32s()
				require.NoError(t, err)
				return v
			}
			require.Equal(t, runUNet(folder), runUNet(single), "unet")

			runVAE := func(m *Model) []float32 {
				v, err := vae.Load(weights.Params(m.VAEWeights, cpu), m.VAE)
				require.NoError(t, err)
				defer v.Release()
				mean, _, err := v.Encode(ramp(t, cpu, 1, 3, 64, 64))
				require.NoError(t, err)
				dec, err := v.Decode(mean)
				require.NoError(t, err)
				out, err := dec.Float32s()
				require.NoError(t, err)
				return out
			}
			require.Equal(t, runVAE(folder), runVAE(single), "vae")

			require.Len(t, single.TextEncoders, len(folder.TextEncoders))
			for i := range folder.TextEncoders {
				runText := func(te TextEncoder) []float32 {
					m, err := clip.Load(weights.Params(te.Weights, cpu), te.Config)
					require.NoError(t, err)
					defer m.Release()
					out, err := m.Forward([][]int{{1, 5, 9, 2013, 2013}})
					require.NoError(t, err)
					v, err := out.LastHiddenState.Float32s()
					require.NoError(t, err)
					if out.TextEmbeds != nil {
						e, err := out.TextEmbeds.Float32s()
						require.NoError(t, err)
						v = append(v, e...)
					}
					return v
				}
				require.Equal(t, runText(folder.TextEncoders[i]), runText(single.TextEncoders[i]), "%s", folder.TextEncoders[i].Name)
			}
		})
	}
}

func ramp(t *testing.T, b tensor.Backend, shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%17)/8 - 1
	}
	x, err := tensor.FromFloat32(b, v, shape...)
	require.NoError(t, err)
	return x
}
