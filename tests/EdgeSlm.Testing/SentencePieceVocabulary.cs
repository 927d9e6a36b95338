namespace EdgeSlm.Testing;

/// <summary>
/// A SentencePiece BPE vocabulary trained here on the intent datasets' train sentences, laid out like Llama 2's:
/// &lt;unk&gt; (0), &lt;s&gt; (1), &lt;/s&gt; (2), the byte tokens &lt;0x00&gt;..&lt;0xFF&gt; (3..258), the learned pieces, then
/// ChatML's control tokens and one user-defined token. Training is SentencePiece's BPE: words are "▁" + the text
/// between spaces, pieces never cross a word, the most frequent adjacent pair merges first (ties: the ordinally
/// smaller pair, so the result is deterministic), and a piece scores minus its merge's index, the characters after
/// all merges (as SentencePiece's BPE model scores them). Characters seen fewer than <see cref="MinCharacterCount"/>
/// times stay out, so rare scripts take the byte fallback. The result is cached in the temporary folder the synthetic
/// decoder files share (one line per token: base64 of its UTF-8, score, type), named after <see cref="TrainerVersion"/>.
/// </summary>
public static class SentencePieceVocabulary
{
    /// <summary>Part of the cached vocabulary's and the synthetic files' names: raise it when the trained vocabulary changes.</summary>
    public const int TrainerVersion = 1;

    public const int UnknownId = 0;
    public const int BosId = 1;
    public const int EosId = 2;
    public const int FirstByteId = 3;

    /// <summary>The vocabulary's size: fixed tokens, characters and merged pieces together.</summary>
    public const int Size = 4000;

    public const int MinCharacterCount = 3;
    public const int SentencesPerDataset = 2500;

    public static readonly string[] ChatTokens = ["<|im_start|>", "<|im_end|>"];

    /// <summary>A user-defined token (type 4): llama.cpp splits these off even without parsing specials.</summary>
    public const string UserDefinedToken = "<slot>";

    private const char SpaceMark = '\u2581';

    private static readonly Lazy<(string[] Tokens, float[] Scores, int[] Types)> Data = new(LoadOrTrain);

    public static string[] Tokens => Data.Value.Tokens;
    public static float[] Scores => Data.Value.Scores;

    /// <summary>llama.cpp's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte.</summary>
    public static int[] TokenTypes => Data.Value.Types;

    private static (string[] Tokens, float[] Scores, int[] Types) LoadOrTrain()
    {
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"spm-vocabulary-v{TrainerVersion}.tsv");
        if (File.Exists(path))
        {
            string[] lines = File.ReadAllLines(path);
            if (lines.Length == Size)
            {
                var tokens = new string[Size];
                var scores = new float[Size];
                var types = new int[Size];
                for (int i = 0; i < lines.Length; i++)
                {
                    string[] fields = lines[i].Split('\t');
                    tokens[i] = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(fields[0]));
                    scores[i] = float.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
                    types[i] = int.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture);
                }
                return (tokens, scores, types);
            }
        }
        (string[] Tokens, float[] Scores, int[] Types) trained = Train();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // Written aside and moved into place, so that a concurrent run never reads half a file.
        string partial = $"{path}.{Guid.NewGuid():N}";
        File.WriteAllLines(partial, trained.Tokens.Select((t, i) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(t))}\t{trained.Scores[i]:R}\t{trained.Types[i]}")));
        File.Move(partial, path, overwrite: true);
        return trained;
    }

    private static (string[] Tokens, float[] Scores, int[] Types) Train()
    {
        // Word frequencies; words are "▁" + the characters between spaces.
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        var characterCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string sentence in DatasetSentences.Take(SentencesPerDataset))
        {
            foreach (string word in sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string marked = SpaceMark + word;
                wordCounts[marked] = wordCounts.GetValueOrDefault(marked) + 1;
                foreach (string character in Characters(marked))
                {
                    characterCounts[character] = characterCounts.GetValueOrDefault(character) + 1;
                }
            }
        }
        string[] characters = characterCounts.Where(c => c.Value >= MinCharacterCount)
            .OrderByDescending(c => c.Value).ThenBy(c => c.Key, StringComparer.Ordinal).Select(c => c.Key).ToArray();
        var known = new HashSet<string>(characters, StringComparer.Ordinal);

        // Each word as a list of symbol ids; a character that is no piece stays a symbol that never merges.
        var symbolIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var symbolTexts = new List<string>();
        int Symbol(string text)
        {
            if (!symbolIds.TryGetValue(text, out int id))
            {
                id = symbolTexts.Count;
                symbolIds.Add(text, id);
                symbolTexts.Add(text);
            }
            return id;
        }
        var words = wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal)
            .Select(w => (Symbols: Characters(w.Key).Select(c => known.Contains(c) ? Symbol(c) : -1).ToList(), Count: w.Value))
            .ToList();

        string[] fixedTokens = ["<unk>", "<s>", "</s>", .. Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>")];
        int reserved = fixedTokens.Length + ChatTokens.Length + 1;
        var pieces = new List<string>();
        var pieceSet = new HashSet<string>([.. known, .. fixedTokens, .. ChatTokens, UserDefinedToken], StringComparer.Ordinal);
        // Pair counts kept up to date: a merge recounts only the words it changes.
        var pairCounts = new Dictionary<(int Left, int Right), int>();
        void CountPairs(List<int> symbols, int count)
        {
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                if (symbols[i] < 0 || symbols[i + 1] < 0) continue;
                var pair = (symbols[i], symbols[i + 1]);
                int total = pairCounts.GetValueOrDefault(pair) + count;
                if (total == 0) pairCounts.Remove(pair);
                else pairCounts[pair] = total;
            }
        }
        foreach ((List<int> symbols, int count) in words)
        {
            CountPairs(symbols, count);
        }
        while (reserved + characters.Length + pieces.Count < Size && pairCounts.Count > 0)
        {
            // The most frequent pair of adjacent symbols, the ordinally smaller pair on a tie.
            (int Left, int Right) best = default;
            int bestCount = 0;
            foreach (((int Left, int Right) pair, int count) in pairCounts)
            {
                if (count > bestCount || (count == bestCount && ComparePairs(pair, best) < 0))
                {
                    best = pair;
                    bestCount = count;
                }
            }
            string merged = symbolTexts[best.Left] + symbolTexts[best.Right];
            int mergedId = Symbol(merged);
            if (pieceSet.Add(merged))
            {
                pieces.Add(merged);
            }
            foreach ((List<int> symbols, int count) in words)
            {
                bool contains = false;
                for (int i = 0; i + 1 < symbols.Count && !contains; i++)
                {
                    contains = symbols[i] == best.Left && symbols[i + 1] == best.Right;
                }
                if (!contains) continue;
                CountPairs(symbols, -count);
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == best.Left && symbols[i + 1] == best.Right)
                    {
                        symbols[i] = mergedId;
                        symbols.RemoveAt(i + 1);
                    }
                }
                CountPairs(symbols, count);
            }
        }

        int ComparePairs((int Left, int Right) a, (int Left, int Right) b)
        {
            int left = string.CompareOrdinal(symbolTexts[a.Left], symbolTexts[b.Left]);
            return left != 0 ? left : string.CompareOrdinal(symbolTexts[a.Right], symbolTexts[b.Right]);
        }

        var tokens = new List<string>(fixedTokens);
        var scores = new List<float>(new float[fixedTokens.Length]);
        var types = new List<int> { 2, 3, 3 };
        types.AddRange(Enumerable.Repeat(6, 256));
        for (int i = 0; i < pieces.Count; i++)
        {
            tokens.Add(pieces[i]);
            scores.Add(-i);
            types.Add(1);
        }
        for (int i = 0; i < characters.Length; i++)
        {
            tokens.Add(characters[i]);
            scores.Add(-(pieces.Count + i));
            types.Add(1);
        }
        foreach (string control in ChatTokens)
        {
            tokens.Add(control);
            scores.Add(0);
            types.Add(3);
        }
        tokens.Add(UserDefinedToken);
        scores.Add(0);
        types.Add(4);
        return (tokens.ToArray(), scores.ToArray(), types.ToArray());
    }

    /// <summary>The text's characters (a surrogate pair is one).</summary>
    private static IEnumerable<string> Characters(string text)
    {
        for (int i = 0; i < text.Length;)
        {
            int n = char.IsSurrogatePair(text, i) ? 2 : 1;
            yield return text.Substring(i, n);
            i += n;
        }
    }
}
