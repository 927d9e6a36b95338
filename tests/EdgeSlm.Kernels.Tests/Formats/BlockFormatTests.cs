using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.Tests.Formats;

public class BlockFormatTests
{
    [Fact]
    public void Blocks_have_ggml_sizes()
    {
        // ggml-common.h: static_assert(sizeof(block_q4_0) == sizeof(ggml_half) + QK4_0 / 2) and likewise for q8_0.
        Assert.Equal(18, Unsafe.SizeOf<BlockQ4_0>());
        Assert.Equal(18, Marshal.SizeOf<BlockQ4_0>());
        Assert.Equal(34, Unsafe.SizeOf<BlockQ8_0>());
        Assert.Equal(34, Marshal.SizeOf<BlockQ8_0>());
    }

    [Fact]
    public void Type_table_matches_ggml()
    {
        QuantTypeTraits q4 = QuantTypeTraits.Of(QuantType.Q4_0);
        Assert.Equal(("q4_0", 32, 18, QuantType.Q8_0), (q4.Name, q4.BlockElements, q4.BlockBytes, q4.DotPartner));
        QuantTypeTraits q8 = QuantTypeTraits.Of(QuantType.Q8_0);
        Assert.Equal(("q8_0", 32, 34, QuantType.Q8_0), (q8.Name, q8.BlockElements, q8.BlockBytes, q8.DotPartner));
        Assert.Equal(2, (int)QuantType.Q4_0);
        Assert.Equal(8, (int)QuantType.Q8_0);
        Assert.Equal(1, (int)QuantType.F16);
        Assert.Equal(QuantType.Q4_0, QuantTypeTraits.Parse("Q4_0").Type);
        Assert.Equal(18 * 12, q4.RowBytes(384));
        Assert.Throws<ArgumentException>(() => q4.RowBytes(100));
        Assert.Throws<NotSupportedException>(() => QuantTypeTraits.Of((QuantType)99));
        Assert.Throws<FormatException>(() => QuantTypeTraits.Parse("q3_k"));
    }

    [Fact]
    public void Q4_0_puts_element_j_in_the_low_nibble_and_element_j_plus_16_in_the_high_nibble()
    {
        // Element i = (i - 16) / 2 for i < 16 and a ramp above: distinct values so a swapped nibble shows.
        float[] values = new float[32];
        for (int i = 0; i < 32; i++)
        {
            values[i] = i < 16 ? -8 + i / 2 : i - 24;
        }
        values[0] = -8; // the maximum magnitude, negative: d = -8 / -8 = 1
        var block = new BlockQ4_0[1];
        ReferenceQuantizer.QuantizeQ4_0(values, block);

        Assert.Equal((Half)1f, block[0].Scale);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal((int)values[j] + 8, block[0].Quants[j] & 0x0F);
            Assert.Equal(Math.Min(15, (int)values[j + 16] + 8), block[0].Quants[j] >> 4);
            Assert.Equal(block[0].Quants[j] & 0x0F, block[0].Quant(j));
            Assert.Equal(block[0].Quants[j] >> 4, block[0].Quant(j + 16));
        }
    }

    [Fact]
    public void Fast_fp16_conversion_is_exact_for_every_finite_half()
    {
        for (int bits = 0; bits < 0x10000; bits++)
        {
            Half half = BitConverter.UInt16BitsToHalf((ushort)bits);
            if (!Half.IsFinite(half))
            {
                continue;
            }
            float expected = (float)half;
            Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(Fp16.ToSingle((ushort)bits)));
        }
    }

    [Fact]
    public void Vector_fp16_conversion_is_exact_for_every_finite_half()
    {
        Span<uint> lanes = stackalloc uint[4];
        for (int bits = 0; bits < 0x10000; bits += 4)
        {
            for (int i = 0; i < 4; i++) lanes[i] = (uint)(bits + i);
            var converted = Fp16.ToSingle(System.Runtime.Intrinsics.Vector128.Create<uint>(lanes));
            for (int i = 0; i < 4; i++)
            {
                Half half = BitConverter.UInt16BitsToHalf((ushort)(bits + i));
                if (Half.IsFinite(half))
                {
                    Assert.Equal(BitConverter.SingleToInt32Bits((float)half), BitConverter.SingleToInt32Bits(converted[i]));
                }
            }
        }
    }
}
