namespace EdgeSlm.Kernels.Tests;

/// <summary>Central finite differences in double, the yardstick for every backward pass.</summary>
internal static class FiniteDifferences
{
    /// <summary>∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h for every i, with f evaluated in double.</summary>
    public static double[] Gradient(Func<double[], double> f, double[] x, double h = 1e-5)
    {
        var gradient = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + h;
            double plus = f(x);
            x[i] = saved - h;
            double minus = f(x);
            x[i] = saved;
            gradient[i] = (plus - minus) / (2 * h);
        }
        return gradient;
    }

    /// <summary>
    /// The largest element difference relative to the largest gradient element: a per-element relative error would
    /// blow up on elements that are zero up to rounding.
    /// </summary>
    public static double RelativeError(ReadOnlySpan<float> analytic, double[] numeric)
    {
        double largest = 0, difference = 0;
        for (int i = 0; i < numeric.Length; i++)
        {
            largest = Math.Max(largest, Math.Abs(numeric[i]));
            difference = Math.Max(difference, Math.Abs(analytic[i] - numeric[i]));
        }
        return difference / Math.Max(largest, 1e-12);
    }

    public static double[] ToDouble(float[] values) => values.Select(v => (double)v).ToArray();

    public static double Dot(double[] a, ReadOnlySpan<double> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }
}
