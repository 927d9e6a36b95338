using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using EdgeSlm.Intents.Examples;

namespace EdgeSlm.Intents.Features;

/// <summary>Example sets embedded into feature rows, optionally kept on disk between runs.</summary>
public static class ExampleFeatures
{
    /// <summary>
    /// The examples' features, row after row. With <paramref name="cacheDirectory"/>, embedded sets are kept there
    /// between runs, keyed by the features' fingerprint and the texts (for experiments: <c>--feature-cache DIR</c>).
    /// </summary>
    public static float[] Embed(SentenceFeatures features, IReadOnlyList<IntentExample> examples, string? cacheDirectory = null) =>
        Embed(features, examples, cacheDirectory, null);

    /// <summary>
    /// As <see cref="Embed(SentenceFeatures, IReadOnlyList{IntentExample}, string?)"/>, and with
    /// <paramref name="tokens"/> also each example's piece states (sentence i is example i). The cache keeps the
    /// sentence features only, so asking for the pieces always runs the encoders.
    /// </summary>
    public static float[] Embed(SentenceFeatures features, IReadOnlyList<IntentExample> examples, string? cacheDirectory, TokenStates? tokens)
    {
        string? path = null;
        if (cacheDirectory is string directory)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(Encoding.UTF8.GetBytes(features.Fingerprint));
            foreach (IntentExample example in examples)
            {
                hash.AppendData(Encoding.UTF8.GetBytes("\n" + example.Text));
            }
            path = Path.Combine(directory, Convert.ToHexStringLower(hash.GetHashAndReset())[..32] + ".f32");
            if (tokens is null && File.Exists(path) && new FileInfo(path).Length == (long)examples.Count * features.Dimension * sizeof(float))
            {
                return MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();
            }
        }
        var result = new float[examples.Count * features.Dimension];
        features.Embed(examples.Select(e => e.Text).ToArray(), result, [], tokens);
        if (path is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, MemoryMarshal.AsBytes(result.AsSpan()).ToArray());
        }
        return result;
    }
}
