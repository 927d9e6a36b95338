using System.Numerics.Tensors;
using EdgeSlm.Kernels.Dispatch;


namespace EdgeSlm.Kernels.Activations;

/// <summary>SwiGLU's gating: y = silu(g) ⊙ u with silu(g) = g / (1 + e^−g), as ggml's <c>swiglu</c>.</summary>
public static class SwiGlu
{
    /// <summary>y[i] = silu(gate[i]) · up[i]; <paramref name="y"/> may be <paramref name="gate"/> or <paramref name="up"/>.</summary>
    public static void Compute(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y, FloatPath? path = null)
    {
        Validate(gate, up, y);
        if ((path ?? FloatPaths.Default) is FloatPath.Reference)
        {
            ComputeReference(gate, up, y);
            return;
        }
        ComputeVector(gate, up, y);
    }

    public static void ComputeReference(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        Validate(gate, up, y);
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            y[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>g · sigmoid(g) · u through TensorPrimitives, 256 values at a time through a stack buffer, so that y may be gate or up.</summary>
    public static void ComputeVector(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        Validate(gate, up, y);
        Span<float> silu = stackalloc float[256];
        for (int start = 0; start < gate.Length; start += silu.Length)
        {
            int count = Math.Min(silu.Length, gate.Length - start);
            Span<float> s = silu[..count];
            ReadOnlySpan<float> g = gate.Slice(start, count);
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(s, g, s);
            TensorPrimitives.Multiply(s, up.Slice(start, count), y.Slice(start, count));
        }
    }

    private static void Validate(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y)
    {
        if (up.Length != gate.Length || y.Length != gate.Length)
        {
            throw new ArgumentException($"SwiGLU needs gate, up and output of one length (gate {gate.Length}, up {up.Length}, output {y.Length}).");
        }
    }
}
