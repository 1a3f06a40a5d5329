package unet

import (
	"fmt"
	"slices"

	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// arch is a UNet configuration resolved per level: diffusers' config spreads the
// same facts over ints-or-lists and historical quirks (attention_head_dim means
// the number of heads); the network is built from this form only.
type arch struct {
	inChannels, outChannels int
	channels                []int // block_out_channels
	layers                  []int // layers_per_block, per level
	down, up                []string
	mid                     string
	heads                   []int // attention heads per level
	transformerLayers       []int // per level, down and mid blocks
	upTransformerLayers     []int // per up block, in up order
	crossDim                []int // per level
	linearProjection        bool
	groups                  int
	eps                     float64
	flipSinToCos            bool
	freqShift               float64
	downsamplePadding       int
	addEmbedTextTime        bool
	addTimeDim, addInputDim int
	convInKernel            int
	convOutKernel           int
	timeEmbed               int
}

func (a *arch) timeEmbedDim() int { return a.timeEmbed }

// newArch resolves a validated config, refusing the features of
// UNet2DConditionModel that no Stable Diffusion checkpoint uses and this
// implementation leaves out.
func newArch(c Config) (arch, error) {
	if err := c.Validate(); err != nil {
		return arch{}, err
	}
	unsupported := func(what string) (arch, error) {
		return arch{}, fmt.Errorf("unet config: %s is not supported", what)
	}
	switch {
	case c.ClassEmbedType != "" || c.NumClassEmbeds != 0:
		return unsupported("class_embed_type " + c.ClassEmbedType)
	case c.TimeCondProjDim != 0:
		return unsupported("time_cond_proj_dim (guidance-embedded LCM UNets)")
	case c.ResnetTimeScaleShift != "default":
		return unsupported("resnet_time_scale_shift " + c.ResnetTimeScaleShift)
	case c.DualCrossAttention:
		return unsupported("dual_cross_attention")
	case c.EncoderHidDimType != "" || c.EncoderHidDim != 0:
		return unsupported("encoder_hid_dim")
	case c.AttentionType != "default":
		return unsupported("attention_type " + c.AttentionType)
	case c.AdditionEmbedType != "" && c.AdditionEmbedType != "text_time":
		return unsupported("addition_embed_type " + c.AdditionEmbedType)
	case c.ActFn != "silu":
		return unsupported("act_fn " + c.ActFn)
	case c.TimeEmbeddingType != "positional":
		return unsupported("time_embedding_type " + c.TimeEmbeddingType)
	case c.CenterInputSample, c.TimestepPostAct != "", c.TimeEmbeddingActFn != "", c.ClassEmbeddingsConcat:
		return unsupported("center_input_sample, timestep_post_act, time_embedding_act_fn or class_embeddings_concat")
	case c.ResnetSkipTimeAct || c.ResnetOutScaleFactor != 1 || c.MidBlockScaleFactor != 1:
		return unsupported("resnet_skip_time_act, resnet_out_scale_factor or mid_block_scale_factor other than the defaults")
	case c.MidBlockType != "UNetMidBlock2DCrossAttn":
		return unsupported(fmt.Sprintf("mid_block_type %q", c.MidBlockType))
	case c.NormNumGroups == 0:
		return unsupported("norm_num_groups null")
	}
	n := c.Levels()
	a := arch{
		inChannels: c.InChannels, outChannels: c.OutChannels, channels: slices.Clone(c.BlockOutChannels),
		down: slices.Clone(c.DownBlockTypes), up: slices.Clone(c.UpBlockTypes), mid: c.MidBlockType,
		linearProjection: c.UseLinearProjection, groups: c.NormNumGroups, eps: c.NormEps,
		flipSinToCos: c.FlipSinToCos, freqShift: float64(c.FreqShift), downsamplePadding: c.DownsamplePadding,
		addEmbedTextTime: c.AdditionEmbedType == "text_time", addTimeDim: c.AdditionTimeEmbedDim,
		addInputDim: c.ProjectionClassEmbeddingsInputDim, convInKernel: c.ConvInKernel, convOutKernel: c.ConvOutKernel,
		timeEmbed: c.TimeEmbedDim(),
	}
	for i := range n {
		if c.OnlyCrossAttentionAt(i) {
			return unsupported("only_cross_attention")
		}
		a.layers = append(a.layers, c.Layers(i))
		a.heads = append(a.heads, c.Heads(i))
		a.transformerLayers = append(a.transformerLayers, c.TransformerLayers(i))
		a.upTransformerLayers = append(a.upTransformerLayers, c.UpTransformerLayers(i))
		a.crossDim = append(a.crossDim, c.CrossAttentionDimAt(i))
	}
	for i, kind := range a.down {
		if kind != "CrossAttnDownBlock2D" && kind != "DownBlock2D" {
			return unsupported(fmt.Sprintf("down_block_types[%d] %q", i, kind))
		}
	}
	for i, kind := range a.up {
		if kind != "CrossAttnUpBlock2D" && kind != "UpBlock2D" {
			return unsupported(fmt.Sprintf("up_block_types[%d] %q", i, kind))
		}
	}
	if a.addEmbedTextTime && (a.addTimeDim <= 0 || a.addInputDim <= 0) {
		return arch{}, fmt.Errorf("unet config: addition_embed_type text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim")
	}
	for _, d := range a.crossDim {
		if d != a.crossDim[0] {
			return unsupported(fmt.Sprintf("cross_attention_dim varying by level %v", a.crossDim))
		}
	}
	return a, nil
}

// Model is a UNet2DConditionModel.
type Model struct {
	arch          arch
	convIn        *nn.Conv2d
	timeEmbedding *nn.TimeMLP
	addEmbedding  *nn.TimeMLP // SDXL's text_time embedding; nil otherwise
	down          []*downBlock
	mid           *midBlock
	up            []*upBlock
	normOut       *nn.GroupNorm
	convOut       *nn.Conv2d
	attention     tensor.AttentionParams
}

type downBlock struct {
	resnets    []*nn.ResnetBlock2D
	attentions []*nn.Transformer2D // empty for DownBlock2D
	downsample *nn.Downsample2D    // nil at the last level
}

type midBlock struct {
	resnets    []*nn.ResnetBlock2D
	attentions []*nn.Transformer2D
}

type upBlock struct {
	resnets    []*nn.ResnetBlock2D
	attentions []*nn.Transformer2D
	upsample   *nn.Upsample2D
}

// Options tune how the network runs; the zero value is the default.
type Options struct {
	// Attention selects the attention kernel (flash or sliced) and its block sizes.
	Attention tensor.AttentionParams
}

// Load builds a UNet from its config and weights named as in diffusers'
// diffusion_pytorch_model.safetensors.
func Load(p nn.Params, cfg Config, opts Options) (*Model, error) {
	a, err := newArch(cfg)
	if err != nil {
		return nil, err
	}
	m := &Model{arch: a, attention: opts.Attention}
	if err := m.load(p); err != nil {
		m.Release()
		return nil, fmt.Errorf("unet: %w", err)
	}
	return m, nil
}

func (m *Model) transformerConfig(level, channels, layers int) nn.Transformer2DConfig {
	a := &m.arch
	return nn.Transformer2DConfig{
		Channels: channels, Heads: a.heads[level], HeadDim: channels / a.heads[level],
		Layers: layers, ContextDim: a.crossDim[level], Groups: a.groups,
		LinearProjection: a.linearProjection, AttentionSettings: m.attention,
	}
}

func (m *Model) load(p nn.Params) error {
	a := &m.arch
	temb := a.timeEmbedDim()
	var err error
	if m.convIn, err = nn.LoadConv2d(nn.Sub(p, "conv_in"), a.inChannels, a.channels[0], a.convInKernel, tensor.Conv2dParams{Padding: (a.convInKernel - 1) / 2}); err != nil {
		return err
	}
	if m.timeEmbedding, err = nn.LoadTimeMLP(nn.Sub(p, "time_embedding"), a.channels[0], temb); err != nil {
		return err
	}
	if a.addEmbedTextTime {
		if m.addEmbedding, err = nn.LoadTimeMLP(nn.Sub(p, "add_embedding"), a.addInputDim, temb); err != nil {
			return err
		}
	}
	out := a.channels[0]
	for i, kind := range a.down {
		in := out
		out = a.channels[i]
		bp := nn.Sub(p, fmt.Sprintf("down_blocks.%d", i))
		b := &downBlock{}
		m.down = append(m.down, b)
		for j := range a.layers[i] {
			rin := out
			if j == 0 {
				rin = in
			}
			r, err := nn.LoadResnetBlock2D(nn.Sub(bp, fmt.Sprintf("resnets.%d", j)), rin, out, temb, a.groups, a.eps)
			if err != nil {
				return err
			}
			b.resnets = append(b.resnets, r)
			if kind == "CrossAttnDownBlock2D" {
				t, err := nn.LoadTransformer2D(nn.Sub(bp, fmt.Sprintf("attentions.%d", j)), m.transformerConfig(i, out, a.transformerLayers[i]))
				if err != nil {
					return err
				}
				b.attentions = append(b.attentions, t)
			}
		}
		if i < len(a.channels)-1 {
			if b.downsample, err = nn.LoadDownsample2D(nn.Sub(bp, "downsamplers.0"), out, a.downsamplePadding); err != nil {
				return err
			}
		}
	}
	last := len(a.channels) - 1
	top := a.channels[last]
	mp := nn.Sub(p, "mid_block")
	m.mid = &midBlock{}
	r, err := nn.LoadResnetBlock2D(nn.Sub(mp, "resnets.0"), top, top, temb, a.groups, a.eps)
	if err != nil {
		return err
	}
	m.mid.resnets = append(m.mid.resnets, r)
	if a.mid == "UNetMidBlock2DCrossAttn" {
		t, err := nn.LoadTransformer2D(nn.Sub(mp, "attentions.0"), m.transformerConfig(last, top, a.transformerLayers[last]))
		if err != nil {
			return err
		}
		m.mid.attentions = append(m.mid.attentions, t)
	}
	if r, err = nn.LoadResnetBlock2D(nn.Sub(mp, "resnets.1"), top, top, temb, a.groups, a.eps); err != nil {
		return err
	}
	m.mid.resnets = append(m.mid.resnets, r)

	out = a.channels[last]
	for i, kind := range a.up {
		level := last - i // the up blocks run the levels in reverse
		prev := out
		out = a.channels[level]
		in := a.channels[max(level-1, 0)]
		bp := nn.Sub(p, fmt.Sprintf("up_blocks.%d", i))
		b := &upBlock{}
		m.up = append(m.up, b)
		n := a.layers[level] + 1
		for j := range n {
			skip := out
			if j == n-1 {
				skip = in
			}
			rin := out
			if j == 0 {
				rin = prev
			}
			r, err := nn.LoadResnetBlock2D(nn.Sub(bp, fmt.Sprintf("resnets.%d", j)), rin+skip, out, temb, a.groups, a.eps)
			if err != nil {
				return err
			}
			b.resnets = append(b.resnets, r)
			if kind == "CrossAttnUpBlock2D" {
				t, err := nn.LoadTransformer2D(nn.Sub(bp, fmt.Sprintf("attentions.%d", j)), m.transformerConfig(level, out, a.upTransformerLayers[i]))
				if err != nil {
					return err
				}
				b.attentions = append(b.attentions, t)
			}
		}
		if i < len(a.up)-1 {
			if b.upsample, err = nn.LoadUpsample2D(nn.Sub(bp, "upsamplers.0"), out); err != nil {
				return err
			}
		}
	}
	if m.normOut, err = nn.LoadGroupNorm(nn.Sub(p, "conv_norm_out"), a.groups, a.channels[0], a.eps); err != nil {
		return err
	}
	m.convOut, err = nn.LoadConv2d(nn.Sub(p, "conv_out"), a.channels[0], a.outChannels, a.convOutKernel, tensor.Conv2dParams{Padding: (a.convOutKernel - 1) / 2})
	return err
}

// Release releases the weights.
func (m *Model) Release() {
	if m.convIn != nil {
		m.convIn.Release()
	}
	if m.timeEmbedding != nil {
		m.timeEmbedding.Release()
	}
	if m.addEmbedding != nil {
		m.addEmbedding.Release()
	}
	release := func(rs []*nn.ResnetBlock2D, ts []*nn.Transformer2D) {
		for _, r := range rs {
			r.Release()
		}
		for _, t := range ts {
			t.Release()
		}
	}
	for _, b := range m.down {
		release(b.resnets, b.attentions)
		if b.downsample != nil {
			b.downsample.Release()
		}
	}
	if m.mid != nil {
		release(m.mid.resnets, m.mid.attentions)
	}
	for _, b := range m.up {
		release(b.resnets, b.attentions)
		if b.upsample != nil {
			b.upsample.Release()
		}
	}
	if m.normOut != nil {
		m.normOut.Release()
	}
	if m.convOut != nil {
		m.convOut.Release()
	}
}

// Input is one call's conditioning.
type Input struct {
	Sample   *tensor.Tensor // [B, in_channels, H, W] latents
	Timestep []float32      // one per batch item
	Context  *tensor.Tensor // encoder_hidden_states [B, S, cross_attention_dim]
	// SDXL's added conditions: the pooled text embedding [B, D] and the size and
	// crop conditioning time_ids [B, 6].
	TextEmbeds, TimeIDs *tensor.Tensor
}

// Trace receives the output of each block ("conv_in", "time_embedding",
// "add_embedding", "down_blocks.N", "mid_block", "up_blocks.N") when set; the
// tensor is only valid during the call.
type Trace func(block string, t *tensor.Tensor)

// Forward predicts the noise (or v, or x0, per the model's training) for in.
func (m *Model) Forward(in Input, trace Trace) (*tensor.Tensor, error) {
	a := &m.arch
	x := in.Sample
	if x == nil || x.Rank() != 4 || x.Dim(1) != a.inChannels {
		return nil, fmt.Errorf("unet: sample %v, want [B %d H W]", x, a.inChannels)
	}
	batch := x.Dim(0)
	if len(in.Timestep) != batch {
		return nil, fmt.Errorf("unet: %d timesteps for a batch of %d", len(in.Timestep), batch)
	}
	if in.Context == nil || in.Context.Rank() != 3 || in.Context.Dim(0) != batch || in.Context.Dim(2) != a.crossDim[0] {
		return nil, fmt.Errorf("unet: encoder_hidden_states %v, want [%d S %d]", in.Context, batch, a.crossDim[0])
	}
	if trace == nil {
		trace = func(string, *tensor.Tensor) {}
	}
	emb, err := m.embed(in, trace)
	if err != nil {
		return nil, err
	}
	defer emb.Release()

	h, err := m.convIn.Forward(x)
	if err != nil {
		return nil, err
	}
	trace("conv_in", h)
	skips := []*tensor.Tensor{h}
	defer func() {
		for _, s := range skips {
			s.Release()
		}
	}()
	for i, b := range m.down {
		for j, r := range b.resnets {
			next, err := r.Forward(h, emb)
			if err != nil {
				return nil, fmt.Errorf("unet: down_blocks.%d.resnets.%d: %w", i, j, err)
			}
			h = next
			if j < len(b.attentions) {
				next, err := b.attentions[j].Forward(h, in.Context)
				h.Release()
				if err != nil {
					return nil, fmt.Errorf("unet: down_blocks.%d.attentions.%d: %w", i, j, err)
				}
				h = next
			}
			skips = append(skips, h)
		}
		if b.downsample != nil {
			next, err := b.downsample.Forward(h)
			if err != nil {
				return nil, fmt.Errorf("unet: down_blocks.%d.downsamplers.0: %w", i, err)
			}
			h = next
			skips = append(skips, h)
		}
		trace(fmt.Sprintf("down_blocks.%d", i), h)
	}
	// h is the last skip; the mid block's output is new.
	if h, err = m.mid.resnets[0].Forward(h, emb); err != nil {
		return nil, fmt.Errorf("unet: mid_block.resnets.0: %w", err)
	}
	for j, t := range m.mid.attentions {
		next, err := t.Forward(h, in.Context)
		h.Release()
		if err != nil {
			return nil, fmt.Errorf("unet: mid_block.attentions.%d: %w", j, err)
		}
		if h, err = m.mid.resnets[j+1].Forward(next, emb); err != nil {
			next.Release()
			return nil, fmt.Errorf("unet: mid_block.resnets.%d: %w", j+1, err)
		}
		next.Release()
	}
	if len(m.mid.attentions) == 0 {
		next, err := m.mid.resnets[1].Forward(h, emb)
		h.Release()
		if err != nil {
			return nil, fmt.Errorf("unet: mid_block.resnets.1: %w", err)
		}
		h = next
	}
	trace("mid_block", h)
	for i, b := range m.up {
		for j, r := range b.resnets {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			cat, err := tensor.Concat(1, h, skip)
			h.Release()
			skip.Release()
			if err != nil {
				return nil, fmt.Errorf("unet: up_blocks.%d: %w", i, err)
			}
			h, err = r.Forward(cat, emb)
			cat.Release()
			if err != nil {
				return nil, fmt.Errorf("unet: up_blocks.%d.resnets.%d: %w", i, j, err)
			}
			if j < len(b.attentions) {
				next, err := b.attentions[j].Forward(h, in.Context)
				h.Release()
				if err != nil {
					return nil, fmt.Errorf("unet: up_blocks.%d.attentions.%d: %w", i, j, err)
				}
				h = next
			}
		}
		if b.upsample != nil {
			// Upsample to the next skip's size, which is not twice this one when a
			// latent side is not a multiple of 2^levels.
			next := skips[len(skips)-1]
			up, err := b.upsample.Forward(h, next.Dim(2), next.Dim(3))
			h.Release()
			if err != nil {
				return nil, fmt.Errorf("unet: up_blocks.%d.upsamplers.0: %w", i, err)
			}
			h = up
		}
		trace(fmt.Sprintf("up_blocks.%d", i), h)
	}
	n, err := m.normOut.ForwardSiLU(h)
	h.Release()
	if err != nil {
		return nil, err
	}
	defer n.Release()
	return m.convOut.Forward(n)
}

// embedTimeIDs returns the sinusoidal embedding of each of SDXL's time ids
// [B,k] as [B·k, addTimeDim]: on the device where the ids are when that is b
// (no read back to the host), else from their values uploaded to b.
func embedTimeIDs(b tensor.Backend, ids *tensor.Tensor, a *arch) (*tensor.Tensor, error) {
	if ids.Backend() != b {
		v, err := ids.Float32s()
		if err != nil {
			return nil, err
		}
		return nn.SinusoidalEmbedding(b, v, a.addTimeDim, a.flipSinToCos, a.freqShift)
	}
	flat, err := ids.Reshape(ids.Numel())
	if err != nil {
		return nil, err
	}
	defer flat.Release()
	return tensor.TimestepEmbedding(flat, a.addTimeDim, tensor.TimestepEmbeddingParams{FlipSinToCos: a.flipSinToCos, FreqShift: a.freqShift})
}

// embed computes the time embedding, plus SDXL's added text_time embedding.
func (m *Model) embed(in Input, trace Trace) (*tensor.Tensor, error) {
	a := &m.arch
	b := in.Sample.Backend()
	tproj, err := nn.SinusoidalEmbedding(b, in.Timestep, a.channels[0], a.flipSinToCos, a.freqShift)
	if err != nil {
		return nil, err
	}
	emb, err := m.timeEmbedding.Forward(tproj)
	tproj.Release()
	if err != nil {
		return nil, err
	}
	trace("time_embedding", emb)
	if m.addEmbedding == nil {
		return emb, nil
	}
	batch := in.Sample.Dim(0)
	if in.TextEmbeds == nil || in.TimeIDs == nil || in.TextEmbeds.Rank() != 2 || in.TextEmbeds.Dim(0) != batch ||
		in.TimeIDs.Rank() != 2 || in.TimeIDs.Dim(0) != batch || in.TextEmbeds.Dim(1)+in.TimeIDs.Dim(1)*a.addTimeDim != a.addInputDim {
		emb.Release()
		return nil, fmt.Errorf("unet: text_embeds %v and time_ids %v do not make the %d-wide added embedding of a batch of %d", in.TextEmbeds, in.TimeIDs, a.addInputDim, batch)
	}
	tp, err := embedTimeIDs(b, in.TimeIDs, a)
	if err != nil {
		emb.Release()
		return nil, err
	}
	tpr, err := tp.Reshape(batch, -1)
	tp.Release()
	if err != nil {
		emb.Release()
		return nil, err
	}
	cat, err := tensor.Concat(1, in.TextEmbeds, tpr)
	tpr.Release()
	if err != nil {
		emb.Release()
		return nil, err
	}
	aug, err := m.addEmbedding.Forward(cat)
	cat.Release()
	if err != nil {
		emb.Release()
		return nil, err
	}
	trace("add_embedding", aug)
	sum, err := tensor.Add(emb, aug)
	emb.Release()
	aug.Release()
	return sum, err
}
