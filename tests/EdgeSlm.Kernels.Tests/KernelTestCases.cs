using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Tests;

/// <summary>Paths, shapes and exact-integer inputs shared by the kernel tests.</summary>
internal static class KernelTestCases
{
    /// <summary>
    /// Float results of two paths may differ only by the order of float additions: at most this fraction of
    /// Σ|w·x| over the row (a few float ulps per block for up to a few hundred blocks).
    /// </summary>
    public const double FloatTolerance = 2e-6;

    /// <summary>
    /// Every SIMD path this CPU runs (the reference is what they are compared with). A path the CPU lacks has no
    /// case here rather than a skipped one: CI runs these tests on x64 (avx2, avx512) and under qemu on Cortex-A53,
    /// A72 (neon) and A76 (neon-dotprod); avx-vnni has no CPU here and is untested (docs/kernels.md).
    /// </summary>
    public static IEnumerable<KernelPath> SimdPaths => (RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.X86 => [KernelPath.Portable, KernelPath.Avx2, KernelPath.AvxVnni, KernelPath.Avx512],
        Architecture.Arm64 => [KernelPath.Portable, KernelPath.Neon, KernelPath.NeonDotProd],
        _ => new[] { KernelPath.Portable },
    }).Where(KernelPaths.IsSupported);

    public static TheoryData<KernelPath, QuantType> PathsAndTypes()
    {
        var data = new TheoryData<KernelPath, QuantType>();
        foreach (KernelPath path in SimdPaths)
        {
            data.Add(path, QuantType.Q4_0);
            data.Add(path, QuantType.Q8_0);
        }
        return data;
    }

    /// <summary>Random weights with every scale 1: every product and sum is an integer, exact in float below 2^24.</summary>
    public static byte[] UnitScaleWeights(QuantType type, int rows, int blocks, int seed)
    {
        var random = new Random(seed);
        int blockBytes = QuantTypeTraits.Of(type).BlockBytes;
        var bytes = new byte[rows * blocks * blockBytes];
        random.NextBytes(bytes);
        for (int b = 0; b < rows * blocks; b++)
        {
            MemoryMarshal.Write(bytes.AsSpan(b * blockBytes), (Half)1f);
        }
        return bytes;
    }

    /// <summary>Q8_0 activation blocks with scale 1 and quants in [-127, 127] (what the activation quantizer makes).</summary>
    public static BlockQ8_0[] UnitScaleActivations(int blocks, int seed, bool extremes = false)
    {
        var random = new Random(seed);
        var result = new BlockQ8_0[blocks];
        for (int b = 0; b < blocks; b++)
        {
            result[b].Scale = (Half)1f;
            for (int j = 0; j < 32; j++)
            {
                result[b].Quants[j] = extremes ? (sbyte)(random.Next(2) == 0 ? -127 : 127) : (sbyte)random.Next(-127, 128);
            }
        }
        return result;
    }

    /// <summary>Σ w·x computed in 64-bit integers straight from the definition of the formats.</summary>
    public static long ExactDot(QuantType type, ReadOnlySpan<byte> weightRow, ReadOnlySpan<BlockQ8_0> activations)
    {
        long sum = 0;
        int blockBytes = QuantTypeTraits.Of(type).BlockBytes;
        for (int b = 0; b < activations.Length; b++)
        {
            ReadOnlySpan<byte> block = weightRow.Slice(b * blockBytes, blockBytes);
            for (int j = 0; j < 32; j++)
            {
                int w = type == QuantType.Q4_0
                    ? (j < 16 ? block[2 + j] & 0x0F : block[2 + j - 16] >> 4) - 8
                    : (sbyte)block[2 + j];
                sum += w * activations[b].Quants[j];
            }
        }
        return sum;
    }

    /// <summary>Σ|w·x| over a row, from the dequantized values: the scale for the float tolerance.</summary>
    public static double AbsoluteDot(QuantType type, ReadOnlySpan<byte> weightRow, ReadOnlySpan<float> activations)
    {
        var w = new float[activations.Length];
        QuantTypeTraits.Of(type).Dequantize(weightRow, w);
        double sum = 0;
        for (int i = 0; i < w.Length; i++) sum += Math.Abs((double)w[i] * activations[i]);
        return sum;
    }
}
