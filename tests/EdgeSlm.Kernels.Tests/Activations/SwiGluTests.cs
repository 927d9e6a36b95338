using EdgeSlm.Kernels.Activations;

namespace EdgeSlm.Kernels.Tests.Activations;

public sealed class SwiGluTests
{
    private const float SumTolerance = 2e-5f;
    public static TheoryData<int> Lengths() => new() { 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 127, 128, 255, 256 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SwiGlu_vector_equals_reference_including_in_place(int length)
    {
        float[] gate = TestData.Gaussian(length, seed: length, scale: 4f);
        float[] up = TestData.Gaussian(length, seed: length + 7);
        var expected = new float[length];
        SwiGlu.ComputeReference(gate, up, expected);
        float[] inPlace = (float[])gate.Clone();
        SwiGlu.ComputeVector(inPlace, up, inPlace);
        for (int i = 0; i < length; i++)
        {
            Assert.True(Math.Abs(expected[i] - inPlace[i]) <= 1e-6f * (1 + Math.Abs(expected[i])), $"{i}: {expected[i]} vs {inPlace[i]}");
        }
    }
}
