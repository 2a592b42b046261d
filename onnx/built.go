package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/diffute/diffute/checkpoint"
	og "github.com/diffute/diffute/onnxgraph"
	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/sdgraph"
	ort "github.com/yalue/onnxruntime_go"
)

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
func (bc *builtComponent) supply(ws checkpoint.Weights) error {
	type job struct {
		p    sdgraph.Param
		w    checkpoint.Weight
		n    int64 // bytes in the graph's type
		elem int   // ONNX element type
		dst  []byte
	}
	var jobs []job
	var arena int64 // bytes of the converted weights, each 64-byte aligned
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
		// ONNX's element types are ONNX Runtime's: the graph's type is the
		// tensor's.
		size, elem := p.DType.Size(), int(p.DType)
		stored := safetensors.F32
		if p.DType == og.Float16 {
			stored = safetensors.F16
		}
		n := int64(size) * numel(p.Shape)
		inPlace := w.DType == stored && uintptr(unsafe.Pointer(unsafe.SliceData(w.Data)))%uintptr(size) == 0
		if inPlace {
			if err := bc.supplied.add(p.Name, w.Data, elem, p.GraphShape); err != nil {
				return err
			}
			continue
		}
		jobs = append(jobs, job{p: p, w: w, n: n, elem: elem})
		arena += (n + 63) &^ 63
	}
	// One mapping holds every converted weight of the component.
	if arena > 0 {
		buf, err := anonymous(int(arena))
		if err != nil {
			return fmt.Errorf("onnx: %s: %d bytes for the converted weights: %w", bc.rel, arena, err)
		}
		bc.buffers = append(bc.buffers, buf)
		var off int64
		for i := range jobs {
			n := jobs[i].n
			jobs[i].dst = buf[off : off+n : off+n]
			off += (n + 63) &^ 63
		}
	}
	// Convert in parallel: fp16 ↔ fp32 of a multi-gigabyte UNet is memory-bound.
	var wg sync.WaitGroup
	next := make(chan job)
	workers := runtime.NumCPU()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				convertWeight(j.dst, j.w, j.elem)
				dropPages(j.w.Data)
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, j := range jobs {
		if err := bc.supplied.add(j.p.Name, j.dst, j.elem, j.p.GraphShape); err != nil {
			return err
		}
	}
	return nil
}

// convertWeight writes w into dst as float32, or as float16 where dst holds
// two bytes an element (a float16 graph's weight stored as float32 or bfloat16:
// converted through float32, a block at a time, rounding to nearest even).
func convertWeight(dst []byte, w checkpoint.Weight, elem int) {
	if elem == ortFloat {
		out := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)/4)
		_ = safetensors.Float32Into(out, w.DType, w.Data)
		return
	}
	out := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), len(dst)/2)
	var block [4096]float32
	src, size := w.Data, w.DType.Size()
	for i := 0; i < len(out); i += len(block) {
		f := block[:min(len(block), len(out)-i)]
		_ = safetensors.Float32Into(f, w.DType, src[i*size:(i+len(f))*size])
		for j, v := range f {
			out[i+j] = float32ToHalf(v)
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

// dropPages tells the kernel a converted source range of a mapped checkpoint is
// not needed again: its pages leave the process's resident set (they stay in the
// page cache), so converting an fp16 UNet to fp32 never holds both at once.
func dropPages(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := (start + page - 1) &^ (page - 1)
	last := (start + uintptr(len(b))) &^ (page - 1)
	if last <= first {
		return
	}
	// A weight the checkpoint package had to move (a transposed projection) is a
	// dead Go buffer by now; dropping its pages only zeroes it.
	_ = syscall.Madvise(b[first-start:last-start], syscall.MADV_DONTNEED)
}

// anonymous maps n zeroed bytes outside Go's heap (ONNX Runtime keeps pointers
// to it, which cgo's rules forbid for Go memory); munmap returns it at once.
// Large buffers ask for transparent huge pages: a multi-gigabyte UNet then
// takes thousands of page faults instead of a million.
func anonymous(n int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, max(n, 1), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err == nil && n >= 4<<20 {
		_ = syscall.Madvise(b, 14) // MADV_HUGEPAGE; refused where THP is off, harmless
	}
	return b, err
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

// builtSource is a checkpoint whose graphs Diffute builds: a diffusers folder
// (configDir holds the configs and weights), or a single-file checkpoint (its
// weights mapped to diffusers names, the configs in configDir).
type builtSource struct {
	configDir string
	variant   string                     // diffusers folder: "" prefers fp16, "fp32" the plain file
	graph     sdgraph.Options            // how the built graphs compute
	halfUNet  bool                       // the UNet computes in float16 (WithPrecision)
	single    *checkpoint.SingleFile     // single-file checkpoint, or nil
	comps     map[string]*builtComponent // by pipeline component
	opened    []*checkpoint.Component    // diffusers components, closed at release
}

func (s *builtSource) info(component string) (*modelInfo, error) {
	folder := component
	if component == "vae_decoder" || component == "vae_encoder" {
		folder = "vae"
	}
	cfg, err := os.ReadFile(filepath.Join(s.configDir, folder, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("onnx: model folder %s: missing %s/config.json", s.configDir, folder)
	}
	o := s.graph
	o.Float16 = component == "unet" && s.halfUNet
	g, err := sdgraph.Build(component, cfg, o)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %s: %w", s.configDir, folder, err)
	}
	var ws checkpoint.Weights
	rel := folder
	if s.single != nil {
		ws = s.single.Components[folder]
		rel = filepath.Base(s.single.Path) + " (" + folder + ")"
		if ws == nil {
			return nil, fmt.Errorf("onnx: %s has no %s weights", s.single.Path, folder)
		}
	} else {
		c, err := checkpoint.OpenComponent(filepath.Join(s.configDir, folder), checkpoint.ComponentOptions{Variant: s.variant})
		if err != nil {
			return nil, fmt.Errorf("onnx: %w", err)
		}
		s.opened = append(s.opened, c)
		ws = c.Weights
	}
	bc := &builtComponent{rel: rel, graph: g}
	if s.comps == nil {
		s.comps = map[string]*builtComponent{}
	}
	if old := s.comps[component]; old != nil {
		old.release() // built again (without the CUDA kernels): no session has it
	}
	s.comps[component] = bc
	if err := bc.supply(ws); err != nil {
		return nil, err
	}
	return bc.modelInfo(), nil
}

// release frees the weights once every session that borrowed them is gone.
func (s *builtSource) release() {
	for _, c := range s.comps {
		c.release()
	}
	for _, c := range s.opened {
		_ = c.Close()
	}
	if s.single != nil {
		_ = s.single.Close()
	}
	s.comps, s.opened, s.single = nil, nil, nil
}
