using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.MatMul;

/// <summary>
/// Activation rows quantized to Q8_0 (<see cref="ActivationBlock"/>s) by <see cref="QuantMatMul.Quantize"/>, so
/// that several matrices with the same input (a layer's query, key and value) are multiplied with one
/// quantization. The memory grows to the largest shape seen and is pinned, so kernels on worker threads can
/// hold pointers into it; after that, quantizing allocates nothing.
/// </summary>
public sealed unsafe class QuantizedActivations
{
    private byte[] _blocks = [];

    /// <summary>Rows (tokens) held.</summary>
    public int Tokens { get; private set; }

    /// <summary>Values per row (a multiple of 32).</summary>
    public int Columns { get; private set; }

    internal byte* Data => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_blocks));

    internal void Resize(int tokens, int columns)
    {
        long bytes = (long)tokens * (columns / 32) * ActivationBlock.Bytes;
        if (bytes > _blocks.Length)
        {
            _blocks = GC.AllocateUninitializedArray<byte>(checked((int)bytes), pinned: true);
        }
        Tokens = tokens;
        Columns = columns;
    }
}
