using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.MatMul;

/// <summary>One quantized matrix multiplication as the kernels see it: y[t, r] = Σ_k W[r, k] · x[t, k].</summary>
internal unsafe struct MatMulArgs
{
    public byte* Weights;            // (rows, blocks) blocks of the weight type, row after row
    public nint WeightRowBytes;
    public int Rows;
    public int Blocks;               // k / 32
    public byte* Activations;        // (tokens, blocks) ActivationBlocks: scale, sum of quants, 32 quants
    public int Tokens;
    public float* Output;            // (tokens, outputStride)
    public int OutputStride;

    public readonly byte* WeightRow(int row) => Weights + row * WeightRowBytes;

    public readonly byte* ActivationRow(int token) => Activations + (nint)token * Blocks * Quantization.ActivationBlock.Bytes;
}
