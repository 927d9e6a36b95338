using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;

namespace EdgeSlm.Models.Conversion;

/// <summary>
/// Quantizes a linear layer's weights to plain Q4_0 by GPTQ (Frantar et al., 2022): the input columns are rounded one
/// after another, and each column's rounding error is pushed onto the columns not yet rounded, in proportion to how
/// the layer's inputs correlate (the Gram matrix H = XᵀX of calibration activations, <see cref="Calibration"/>), so
/// that the layer's output on such inputs changes as little as possible. Each Q4_0 block's scale is chosen, when its
/// first column comes up, to minimise the block's squared error weighted by the inputs' mean squares (diag H).
/// Round-to-nearest Q4_0 on all 36 linear layers of all-MiniLM-L6-v2 leaves a mean cosine of 0.968 to ONNX Runtime;
/// this, 0.988 (docs/performance.md). The blocks are ordinary Q4_0: llama.cpp runs them unchanged.
/// </summary>
internal static class GptqQuantizer
{
    /// <summary>Added to H's diagonal, as a fraction of its mean: keeps H invertible when calibration misses directions.</summary>
    public const double Damping = 0.01;

    /// <summary>
    /// Q4_0 bytes of <paramref name="weights"/> (rows × columns, row after row) for inputs whose Gram matrix is
    /// <paramref name="gram"/> (columns × columns).
    /// </summary>
    public static byte[] QuantizeQ4_0(ReadOnlySpan<float> weights, int rows, int columns, ReadOnlySpan<float> gram)
    {
        if (columns % BlockQ4_0.Elements != 0 || weights.Length != (long)rows * columns || gram.Length != (long)columns * columns)
        {
            throw new ArgumentException($"a {rows} × {columns} matrix needs a multiple of {BlockQ4_0.Elements} columns, {rows * columns} weights and a {columns} × {columns} Gram matrix");
        }
        int n = columns;
        float[] inverseFactor = InverseFactor(gram, n, out float[] diagonal);

        float[] w = weights.ToArray();              // updated in place as errors are pushed right
        var bytes = new byte[rows * (columns / BlockQ4_0.Elements) * BlockQ4_0.Bytes];
        Span<BlockQ4_0> blocks = MemoryMarshal.Cast<byte, BlockQ4_0>(bytes.AsSpan());
        var scales = new float[rows];
        var quants = new sbyte[rows * columns];
        var importance = new float[BlockQ4_0.Elements];
        int blocksPerRow = columns / BlockQ4_0.Elements;
        for (int i = 0; i < n; i++)
        {
            if (i % BlockQ4_0.Elements == 0)
            {
                diagonal.AsSpan(i, importance.Length).CopyTo(importance);
                for (int r = 0; r < rows; r++)
                {
                    Half scale = BlockScale(w.AsSpan(r * columns + i, BlockQ4_0.Elements), importance);
                    if (!Half.IsFinite(scale))
                    {
                        throw new ArithmeticException($"row {r} has weights beyond what an fp16 scale times 8 can hold (±524,000)");
                    }
                    blocks[r * blocksPerRow + i / BlockQ4_0.Elements].Scale = scale;
                    scales[r] = (float)scale;
                }
            }
            float pivot = inverseFactor[i * n + i];
            int rest = n - i - 1;
            ReadOnlySpan<float> factorRow = inverseFactor.AsSpan(i * n, n);
            for (int r = 0; r < rows; r++)
            {
                float value = w[r * columns + i];
                int q = Round(value, scales[r]);
                quants[r * columns + i] = (sbyte)q;
                float error = (value - scales[r] * q) / pivot;
                if (rest > 0 && error != 0f)
                {
                    Span<float> right = w.AsSpan(r * columns + i + 1, rest);
                    TensorPrimitives.MultiplyAdd(factorRow.Slice(i + 1, rest), -error, right, right);
                }
            }
        }
        for (int b = 0; b < blocks.Length; b++)
        {
            int first = b * BlockQ4_0.Elements;
            for (int j = 0; j < 16; j++)
            {
                blocks[b].Quants[j] = (byte)((quants[first + j] + 8) | ((quants[first + 16 + j] + 8) << 4));
            }
        }
        return bytes;
    }

    private static int Round(float value, float scale) =>
        scale == 0f ? 0 : Math.Clamp((int)MathF.Round(value * (1f / scale)), -8, 7);

    /// <summary>
    /// U, upper triangular with H⁻¹ = UᵀU, where H is the damped Gram matrix (a column never active gets the mean
    /// diagonal, which is also its weight in the block scales). With J the reversal permutation and JHJ = MMᵀ (Cholesky), H = RRᵀ for the upper R = JMJ, so
    /// H⁻¹ = (R⁻¹)ᵀR⁻¹ and U = R⁻¹ = J M⁻¹ J: one Cholesky factorisation and one triangular inverse. In single
    /// precision, as GPTQ's authors do: the damping keeps H well enough conditioned, and it is 4 times faster.
    /// </summary>
    private static float[] InverseFactor(ReadOnlySpan<float> gram, int n, out float[] diagonal)
    {
        diagonal = new float[n];
        double mean = 0;
        for (int i = 0; i < n; i++) mean += gram[i * n + i];
        mean = Math.Max(mean / n, 1e-30);
        for (double damping = Damping; ; damping *= 10)
        {
            var reversed = new float[n * n];
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    reversed[(n - 1 - i) * n + (n - 1 - j)] = gram[i * n + j];
                }
                float d = gram[i * n + i] > 0 ? gram[i * n + i] : (float)mean;
                diagonal[i] = d;
                reversed[(n - 1 - i) * n + (n - 1 - i)] = (float)(d + damping * mean);
            }
            if (CholeskyInPlace(reversed, n))
            {
                float[] inverse = InvertLower(reversed, n);
                var u = new float[n * n];
                for (int i = 0; i < n; i++)
                {
                    for (int j = i; j < n; j++)
                    {
                        u[i * n + j] = inverse[(n - 1 - i) * n + (n - 1 - j)];
                    }
                }
                return u;
            }
            if (damping > 1e3)
            {
                throw new ArithmeticException("the calibration Gram matrix is not positive definite even with heavy damping");
            }
        }
    }

    /// <summary>Lower Cholesky factor of a symmetric matrix, in place (the upper triangle is left as it was); false if not positive definite.</summary>
    private static bool CholeskyInPlace(float[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            Span<float> rowJ = a.AsSpan(j * n, j);
            float pivot = a[j * n + j] - TensorPrimitives.Dot(rowJ, rowJ);
            if (!(pivot > 0))
            {
                return false;
            }
            float root = MathF.Sqrt(pivot);
            a[j * n + j] = root;
            for (int i = j + 1; i < n; i++)
            {
                a[i * n + j] = (a[i * n + j] - TensorPrimitives.Dot(a.AsSpan(i * n, j), rowJ)) / root;
            }
        }
        return true;
    }

    /// <summary>The inverse of the lower triangle of <paramref name="l"/>, row by row: X[i] = (eᵢ − Σₖ L[i,k]·X[k]) / L[i,i].</summary>
    private static float[] InvertLower(float[] l, int n)
    {
        var x = new float[n * n];
        for (int i = 0; i < n; i++)
        {
            Span<float> row = x.AsSpan(i * n, i + 1);
            row[i] = 1;
            for (int k = 0; k < i; k++)
            {
                float factor = l[i * n + k];
                if (factor != 0)
                {
                    TensorPrimitives.MultiplyAdd(x.AsSpan(k * n, k + 1), -factor, row[..(k + 1)], row[..(k + 1)]);
                }
            }
            TensorPrimitives.Divide(row, l[i * n + i], row);
        }
        return x;
    }

    // The scales tried per block: the largest weight mapped to −8 give or take up to 0.4 of a step, each refitted by
    // weighted least squares with its rounding redone while the error falls. (Also trying +7 and ±1 step gained
    // nothing measurable at 2.4 times the conversion time.)
    private const int ScaleSteps = 4;
    private const int Refits = 2;

    /// <summary>The fp16 scale of the smallest weighted squared error Σ wⱼ (xⱼ − d·qⱼ)² among the candidates.</summary>
    public static Half BlockScale(ReadOnlySpan<float> x, ReadOnlySpan<float> weights)
    {
        float max = 0f;
        double squares = 0; // Σ w·x², the error of d = 0
        for (int j = 0; j < x.Length; j++)
        {
            if (MathF.Abs(x[j]) > MathF.Abs(max)) max = x[j];
            squares += (double)weights[j] * x[j] * x[j];
        }
        if (max == 0f)
        {
            return (Half)0f;
        }
        Half best = (Half)(max / -8f);
        double bestError = double.PositiveInfinity;
        for (int k = -ScaleSteps; k <= ScaleSteps; k++)
        {
            var scale = (Half)(max / (-8f + 0.1f * k));
            double error = double.PositiveInfinity;
            for (int refit = 0; refit <= Refits; refit++)
            {
                // The quants at this scale, their error, and the scale that fits them best (Σ w·x·q / Σ w·q²).
                (double xq, double qq) = Moments(x, weights, (float)scale);
                double d = (float)scale;
                double scaleError = squares - 2 * d * xq + d * d * qq;
                if (!(scaleError < error)) break;
                error = scaleError;
                if (error < bestError)
                {
                    (best, bestError) = (scale, error);
                }
                if (qq == 0) break;
                scale = (Half)(xq / qq);
            }
        }
        return best;
    }

    private static (double XQ, double QQ) Moments(ReadOnlySpan<float> x, ReadOnlySpan<float> weights, float scale)
    {
        if (scale == 0f || !float.IsFinite(scale)) return (0, 0);
        float inverse = 1f / scale;
        double xq = 0, qq = 0;
        for (int j = 0; j < x.Length; j++)
        {
            int q = Math.Clamp((int)MathF.Round(x[j] * inverse), -8, 7);
            xq += (double)weights[j] * x[j] * q;
            qq += (double)weights[j] * q * q;
        }
        return (xq, qq);
    }
}
