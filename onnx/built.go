package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	og "github.com/diffute/diffute/onnxgraph"
	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/sdgraph"
	ort "github.com/yalue/onnxruntime_go"
)

// weight is one stored parameter under its diffusers name.
type weight struct {
	DType  safetensors.DType
	Shape  []int64
	Data   []byte // a view of the mapped checkpoint
	Origin string // "<file>: <key>", for errors
}

// weightSet looks weights up by diffusers name.
type weightSet interface {
	Lookup(name string) (weight, bool)
}

// builtComponent is a graph Diffute built from a config.json, with the weights
// it reads in place: views of the mapped checkpoint where the stored bytes are
// already what the graph computes on, else one converted copy mapped outside
// Go's heap (freed with the pipeline).
type builtComponent struct {
	rel      string
	graph    *sdgraph.Graph
	supplied suppliedWeights
	buffers  [][]byte // anonymous mappings owned here
}

// componentSource gives the model info of each component of a pipeline.
type componentSource interface {
	info(component string) (*modelInfo, error)
}

// onnxSource is a diffusers/Optimum ONNX folder.
type onnxSource struct{ dir string }

func (s onnxSource) info(component string) (*modelInfo, error) {
	return readModelInfo(s.dir, component)
}

// supply resolves every Param of the graph against ws and prepares the tensors
// ONNX Runtime will read. Errors name the weight, its origin and the shapes.
func (bc *builtComponent) supply(ws weightSet) error {
	type job struct {
		p   sdgraph.Param
		w   weight
		dst []byte
	}
	var jobs []job
	for _, p := range bc.graph.Params {
		w, ok := ws.Lookup(p.Name)
		if !ok {
			return fmt.Errorf("onnx: %s: the checkpoint has no weight %q, which config.json implies", bc.rel, p.Name)
		}
		if !sameShape(w.Shape, p.Shape) {
			return fmt.Errorf("onnx: %s: weight %q (%s) has shape %v, config.json implies %v", bc.rel, p.Name, w.Origin, w.Shape, p.Shape)
		}
		if !w.DType.IsFloat() {
			return fmt.Errorf("onnx: %s: weight %q (%s) is %s, want a float type", bc.rel, p.Name, w.Origin, w.DType)
		}
		n := numel(p.Shape)
		inPlace := w.DType == safetensors.F32 && p.Layout != sdgraph.Transposed && uintptr(unsafe.Pointer(unsafe.SliceData(w.Data)))%4 == 0
		if inPlace {
			if err := bc.supplied.add(p.Name, w.Data, ortFloat, p.GraphShape); err != nil {
				return err
			}
			continue
		}
		buf, err := anonymous(int(4 * n))
		if err != nil {
			return fmt.Errorf("onnx: %s: weight %q: %w", bc.rel, p.Name, err)
		}
		bc.buffers = append(bc.buffers, buf)
		jobs = append(jobs, job{p, w, buf})
	}
	// Convert in parallel: fp16 → fp32 of a multi-gigabyte UNet is memory-bound.
	var wg sync.WaitGroup
	next := make(chan job)
	workers := runtime.NumCPU()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				convertWeight(j.dst, j.w, j.p)
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, j := range jobs {
		if err := bc.supplied.add(j.p.Name, j.dst, ortFloat, j.p.GraphShape); err != nil {
			return err
		}
	}
	return nil
}

// convertWeight writes w as float32 into dst in the graph's layout.
func convertWeight(dst []byte, w weight, p sdgraph.Param) {
	out := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)/4)
	if p.Layout != sdgraph.Transposed {
		_ = safetensors.Float32Into(out, w.DType, w.Data)
		return
	}
	rows, cols := int(p.Shape[0]), int(p.Shape[1]) // stored [out, in]
	size := w.DType.Size()
	row := make([]float32, cols)
	for r := range rows {
		_ = safetensors.Float32Into(row, w.DType, w.Data[r*cols*size:(r+1)*cols*size])
		for c, v := range row {
			out[c*rows+r] = v
		}
	}
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// anonymous maps n zeroed bytes outside Go's heap (ONNX Runtime keeps pointers
// to it, which cgo's rules forbid for Go memory); munmap returns it at once.
func anonymous(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, max(n, 1), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
}

func (bc *builtComponent) release() {
	bc.supplied.release()
	for _, b := range bc.buffers {
		_ = syscall.Munmap(b)
	}
	bc.buffers = nil
}

// modelInfo describes the built graph the way readModelInfo describes an .onnx file.
func (bc *builtComponent) modelInfo() *modelInfo {
	conv := func(ios []sdgraph.IO) []ort.InputOutputInfo {
		out := make([]ort.InputOutputInfo, len(ios))
		for i, io := range ios {
			var t ort.TensorElementDataType = ort.TensorElementDataTypeFloat
			if io.DType == og.Int64 {
				t = ort.TensorElementDataTypeInt64
			}
			out[i] = ort.InputOutputInfo{Name: io.Name, OrtValueType: ort.ONNXTypeTensor, Dimensions: ort.NewShape(io.Dims...), DataType: t}
		}
		return out
	}
	return &modelInfo{rel: bc.rel, path: bc.rel, inputs: conv(bc.graph.Inputs), outputs: conv(bc.graph.Outputs), built: bc}
}

// safetensorsWeights are a component's weights in a diffusers folder.
type safetensorsWeights struct {
	set *safetensors.Set
}

func (s safetensorsWeights) Lookup(name string) (weight, bool) {
	f, t, ok := s.set.Lookup(name)
	if !ok {
		return weight{}, false
	}
	return weight{DType: t.DType, Shape: t.Shape, Data: f.Bytes(t), Origin: filepath.Base(f.Path()) + ": " + name}, true
}

// openComponentWeights opens dir/component's weights: the sharded index or the
// single file, the fp16 variant first when the folder has one.
func openComponentWeights(dir, component string, preferFP16 bool) (*safetensors.Set, error) {
	base := "diffusion_pytorch_model"
	if component == "text_encoder" || component == "text_encoder_2" {
		base = "model"
	}
	cdir := filepath.Join(dir, component)
	names := []string{base + ".fp16.safetensors", base + ".safetensors"}
	if !preferFP16 {
		names = names[1:]
	}
	for _, name := range names {
		if idx := filepath.Join(cdir, name+".index.json"); exists(idx) {
			return safetensors.OpenIndex(idx)
		}
		if p := filepath.Join(cdir, name); exists(p) {
			return safetensors.OpenFiles(p)
		}
	}
	return nil, fmt.Errorf("onnx: model folder %s: %s has no %s[.fp16].safetensors", dir, component, base)
}

// builtSource is a diffusers folder whose graphs Diffute builds.
type builtSource struct {
	dir     string
	variant string // "" or "fp16": prefer *.fp16.safetensors; "fp32": the plain file
	comps   map[string]*builtComponent
	sets    []*safetensors.Set
}

func (s *builtSource) info(component string) (*modelInfo, error) {
	folder := component
	if component == "vae_decoder" {
		folder = "vae"
	}
	rel := folder
	cfg, err := os.ReadFile(filepath.Join(s.dir, folder, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("onnx: model folder %s: missing %s/config.json", s.dir, folder)
	}
	var g *sdgraph.Graph
	switch component {
	case "text_encoder", "text_encoder_2":
		c, err := sdgraph.ParseTextConfig(cfg)
		if err == nil {
			g, err = sdgraph.TextEncoder(c)
		}
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: %s: %w", s.dir, rel, err)
		}
	case "unet":
		c, err := sdgraph.ParseUNetConfig(cfg)
		if err == nil {
			g, err = sdgraph.UNet(c)
		}
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: %s: %w", s.dir, rel, err)
		}
	case "vae_decoder":
		c, err := sdgraph.ParseVAEConfig(cfg)
		if err == nil {
			g, err = sdgraph.VAEDecoder(c)
		}
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: %s: %w", s.dir, rel, err)
		}
	default:
		return nil, fmt.Errorf("onnx: no graph builder for component %s", component)
	}
	set, err := openComponentWeights(s.dir, folder, s.variant != "fp32")
	if err != nil {
		return nil, err
	}
	s.sets = append(s.sets, set)
	bc := &builtComponent{rel: rel, graph: g}
	if s.comps == nil {
		s.comps = map[string]*builtComponent{}
	}
	s.comps[component] = bc
	if err := bc.supply(safetensorsWeights{set}); err != nil {
		return nil, err
	}
	return bc.modelInfo(), nil
}

// release frees what the sessions no longer need once all are created is kept
// simple: everything lives until the pipeline is destroyed.
func (s *builtSource) release() {
	for _, c := range s.comps {
		c.release()
	}
	for _, set := range s.sets {
		_ = set.Close()
	}
	s.comps, s.sets = nil, nil
}
