package onnx

import (
	"encoding/binary"
	"math"
	"syscall"
	"testing"

	og "github.com/diffute/diffute/onnxgraph"
	ort "github.com/yalue/onnxruntime_go"
)

// TestSuppliedInitializer runs a graph whose weight is not in the model bytes
// but handed to ONNX Runtime from memory outside Go's heap.
func TestSuppliedInitializer(t *testing.T) {
	requireORT(t)
	g := og.NewGraph("supplied")
	g.Input("x", og.Float, og.Fixed(1), og.Fixed(2))
	g.Output("y", og.Float, og.Fixed(1), og.Fixed(3))
	g.SuppliedInitializer("w", og.Float, []int64{2, 3})
	g.Node("MatMul", []string{"x", "w"}, []string{"y"})
	model, err := og.NewModel(g).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	for i := range 6 {
		binary.LittleEndian.PutUint32(mem[4*i:], math.Float32bits(float32(i+1)))
	}
	var sw suppliedWeights
	defer sw.release()
	if err := sw.add("w", mem[:24], ortFloat, []int64{2, 3}); err != nil {
		t.Fatal(err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	so.AddSessionConfigEntry("session.disable_prepacking", "1")
	if err := sw.apply(so); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"x"}, []string{"y"}, so)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	x, _ := ort.NewTensor(ort.NewShape(1, 2), []float32{1, 10})
	defer x.Destroy()
	y, _ := ort.NewEmptyTensor[float32](ort.NewShape(1, 3))
	defer y.Destroy()
	if err := s.Run([]ort.Value{x}, []ort.Value{y}); err != nil {
		t.Fatal(err)
	}
	want := []float32{1 + 40, 2 + 50, 3 + 60}
	for i, v := range y.GetData() {
		if v != want[i] {
			t.Fatalf("y = %v, want %v", y.GetData(), want)
		}
	}
	// The session reads the weight in place: changing it changes the output.
	binary.LittleEndian.PutUint32(mem[0:], math.Float32bits(100))
	if err := s.Run([]ort.Value{x}, []ort.Value{y}); err != nil {
		t.Fatal(err)
	}
	if got := y.GetData()[0]; got != 100+40 {
		t.Errorf("y[0] = %v after the weight changed, want 140: the session copied the weight", got)
	}
}
