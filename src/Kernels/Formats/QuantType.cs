namespace EdgeSlm.Kernels.Formats;

/// <summary>Tensor element types, numbered as ggml numbers them (<c>enum ggml_type</c>), so the values can be
/// written into and read from GGUF files as they are. The kernels multiply F32, F16, Q4_0 and Q8_0; the others are
/// storage-only: read from downloaded files and converted at load (see <c>QuantTypeTraits.LoadAs</c>).</summary>
public enum QuantType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    BF16 = 30,
}
