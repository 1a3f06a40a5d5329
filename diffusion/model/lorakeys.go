package model

import (
	"fmt"
	"strings"

	"github.com/sdgo/sdgo/diffusion/unet"
)

// UNetOriginalModules maps the names of a UNet's modules in the original
// CompVis LDM / Stability SGM layout ("input_blocks.4.1.transformer_blocks.0.attn1.to_q",
// "middle_block.0.in_layers.2", "time_embed.0") to their diffusers names
// ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", ...), for the
// UNet of config c. modules are the diffusers module names the UNet has (its
// weight names without ".weight"); only those appear in the result. The names
// are what single-file checkpoints use and what kohya-ss LoRAs for SDXL are
// keyed by (with "_" for "."); the mapping is the one single files load with.
func UNetOriginalModules(c unet.Config, modules []string) map[string]string {
	have := make(map[string]bool, len(modules))
	inner := map[string]bool{
		"": true, "op.": true, "conv.": true,
		// The LDM names of a ResBlock's layers (unetResnet maps them).
		"in_layers.0.": true, "in_layers.2.": true, "out_layers.0.": true,
		"out_layers.3.": true, "emb_layers.1.": true, "skip_connection.": true,
	}
	for _, m := range modules {
		have[m] = true
		// A transformer's modules keep their names inside the block.
		if _, rest, ok := strings.Cut(m, ".attentions."); ok {
			if _, rest, ok := cut(rest); ok {
				inner[rest+"."] = true
			}
		}
	}
	l := layoutOf(c)
	prefixes := []string{
		"time_embed.0.", "time_embed.2.", "input_blocks.0.0.", "out.0.", "out.2.",
		"label_emb.0.0.", "label_emb.0.2.",
	}
	for i := 1; i <= len(l.in); i++ {
		for s := range 2 {
			prefixes = append(prefixes, fmt.Sprintf("input_blocks.%d.%d.", i, s))
		}
	}
	for s := range 3 {
		prefixes = append(prefixes, fmt.Sprintf("middle_block.%d.", s))
	}
	for i := range l.out {
		for s := range 3 {
			prefixes = append(prefixes, fmt.Sprintf("output_blocks.%d.%d.", i, s))
		}
	}
	out := map[string]string{}
	for _, p := range prefixes {
		for in := range inner {
			orig := p + in
			name, err := unetName(orig+"weight", c, l)
			if err != nil {
				continue
			}
			if d := strings.TrimSuffix(name, ".weight"); have[d] {
				out[strings.TrimSuffix(orig, ".")] = d
			}
		}
	}
	return out
}
