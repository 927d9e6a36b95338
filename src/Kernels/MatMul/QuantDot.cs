using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.MatMul;

/// <summary>
/// The dot product of one quantized weight row with one Q8_0 activation row, through the same kernels as
/// <see cref="QuantMatMul"/> (a 1 × 1 product). For checks and tools; models call <see cref="QuantMatMul"/>.
/// </summary>
public static unsafe class QuantDot
{
    public static float Dot(ReadOnlySpan<BlockQ4_0> weights, ReadOnlySpan<BlockQ8_0> activations, KernelPath path) =>
        Dot(QuantType.Q4_0, MemoryMarshal.AsBytes(weights), weights.Length, activations, path);

    public static float Dot(ReadOnlySpan<BlockQ8_0> weights, ReadOnlySpan<BlockQ8_0> activations, KernelPath path) =>
        Dot(QuantType.Q8_0, MemoryMarshal.AsBytes(weights), weights.Length, activations, path);

    private static float Dot(QuantType type, ReadOnlySpan<byte> weights, int blocks, ReadOnlySpan<BlockQ8_0> activations, KernelPath path)
    {
        if (blocks != activations.Length)
        {
            throw new ArgumentException($"The weight row has {blocks} blocks and the activation row {activations.Length}.", nameof(activations));
        }
        if (!KernelPaths.IsSupported(path))
        {
            throw new NotSupportedException($"This CPU cannot run the {KernelPaths.Name(path)} kernel path.");
        }
        if (blocks == 0)
        {
            return 0f;
        }

        // The kernels read activations as ActivationBlocks: the scale widened to float, the sum of the quants.
        byte[] kernelBlocks = new byte[blocks * ActivationBlock.Bytes];
        for (int b = 0; b < blocks; b++)
        {
            Span<byte> block = kernelBlocks.AsSpan(b * ActivationBlock.Bytes, ActivationBlock.Bytes);
            BitConverter.TryWriteBytes(block[ActivationBlock.ScaleOffset..], (float)activations[b].Scale);
            int sum = 0;
            for (int j = 0; j < BlockQ8_0.Elements; j++)
            {
                sum += activations[b].Quants[j];
                block[ActivationBlock.QuantsOffset + j] = (byte)activations[b].Quants[j];
            }
            BitConverter.TryWriteBytes(block[ActivationBlock.SumOffset..], sum);
        }

        float result;
        fixed (byte* w = weights)
        fixed (byte* a = kernelBlocks)
        {
            var args = new MatMulArgs
            {
                Weights = w,
                WeightRowBytes = weights.Length,
                Rows = 1,
                Blocks = blocks,
                Activations = a,
                Tokens = 1,
                Output = &result,
                OutputStride = 1,
            };
            var kernel = type == QuantType.Q4_0 ? QuantMatMulKernels.Q4_0(path) : QuantMatMulKernels.Q8_0(path);
            kernel(in args, 0, 1);
        }
        return result;
    }
}
