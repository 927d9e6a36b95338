using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.Testing;

/// <summary>
/// Valid blocks of the storage-only types with random quant bits, for synthetic model files: EdgeSlm has no
/// quantizer for them (it only reads them). Scales are chosen so that the dequantized weights have zero mean and
/// about the standard deviation asked for; each block's scale varies by ±25 % and the k-quants' sub-block scales
/// cover 32..63 of their 6 bits, so every bit of the formats is exercised.
/// </summary>
public static class RandomBlocks
{
    // Standard deviation of a quant uniform over n values: sqrt((n² − 1) / 12).
    private static readonly float Uniform16 = MathF.Sqrt(255f / 12);
    private static readonly float Uniform32 = MathF.Sqrt(1023f / 12);
    private static readonly float Uniform64 = MathF.Sqrt(4095f / 12);

    public static byte[] Rows(QuantType type, int rows, int columns, float std, Random random)
    {
        int blocks = rows * columns / BlockElements(type);
        return type switch
        {
            QuantType.Q5_0 => Fill<BlockQ5_0>(blocks, random, (ref BlockQ5_0 b) =>
            {
                b.Scale = (Half)(std / Uniform32 * Jitter(random));
                b.HighBits = (uint)random.NextInt64(0, 1L << 32);
            }),
            QuantType.Q5_1 => Fill<BlockQ5_1>(blocks, random, (ref BlockQ5_1 b) =>
            {
                float d = std / Uniform32 * Jitter(random);
                b.Scale = (Half)d;
                b.Minimum = (Half)(-15.5f * d); // q in 0..31 has mean 15.5
                b.HighBits = (uint)random.NextInt64(0, 1L << 32);
            }),
            QuantType.Q4_K => Fill<BlockQ4_K>(blocks, random, (ref BlockQ4_K b) =>
            {
                // value = d·sc·q − dmin·m; with m = sc and dmin = 7.5·d it is d·sc·(q − 7.5), zero mean.
                float d = std / (47.5f * Uniform16) * Jitter(random);
                b.Scale = (Half)d;
                b.MinimumScale = (Half)(7.5f * (float)b.Scale);
                RandomScales(ref b.Scales, random);
            }),
            QuantType.Q5_K => Fill<BlockQ5_K>(blocks, random, (ref BlockQ5_K b) =>
            {
                float d = std / (47.5f * Uniform32) * Jitter(random);
                b.Scale = (Half)d;
                b.MinimumScale = (Half)(15.5f * (float)b.Scale);
                RandomScales(ref b.Scales, random);
            }),
            QuantType.Q6_K => Fill<BlockQ6_K>(blocks, random, (ref BlockQ6_K b) =>
            {
                // value = d·sc·(q − 32): signed scales of magnitude 32..127, mean magnitude 79.5.
                b.Scale = (Half)(std / (79.5f * Uniform64) * Jitter(random));
                for (int i = 0; i < 16; i++)
                {
                    int magnitude = random.Next(32, 128);
                    b.Scales[i] = (sbyte)(random.Next(2) == 0 ? magnitude : -magnitude);
                }
            }),
            _ => throw new ArgumentOutOfRangeException(nameof(type), $"{type} is not a storage-only block type"),
        };
    }

    private static int BlockElements(QuantType type) => type is QuantType.Q5_0 or QuantType.Q5_1 ? 32 : 256;

    private static float Jitter(Random random) => 0.75f + 0.5f * random.NextSingle();

    /// <summary>Sub-block scales sc in 32..63 and minimums m = sc, packed as ggml's get_scale_min_k4 unpacks them.</summary>
    private static void RandomScales(ref KQuantScales scales, Random random)
    {
        Span<byte> q = scales;
        q.Clear();
        for (int j = 0; j < 8; j++)
        {
            int sc = random.Next(32, 64), m = sc;
            if (j < 4)
            {
                q[j] |= (byte)sc;
                q[j + 4] |= (byte)m;
            }
            else
            {
                q[j + 4] = (byte)((sc & 0x0F) | ((m & 0x0F) << 4));
                q[j - 4] |= (byte)((sc >> 4) << 6);
                q[j] |= (byte)((m >> 4) << 6);
            }
        }
    }

    private delegate void Scaler<TBlock>(ref TBlock block);

    /// <summary>Random bytes for every block, then its scales set by <paramref name="scale"/>.</summary>
    private static byte[] Fill<TBlock>(int blocks, Random random, Scaler<TBlock> scale) where TBlock : struct
    {
        var bytes = new byte[blocks * Marshal.SizeOf<TBlock>()];
        random.NextBytes(bytes);
        Span<TBlock> span = MemoryMarshal.Cast<byte, TBlock>(bytes.AsSpan());
        for (int b = 0; b < span.Length; b++)
        {
            scale(ref span[b]);
        }
        return bytes;
    }
}
